"""Request and response payloads: JSON parsed once with orjson, numbers turned into numpy without pydantic per
float; CSV bodies through the one CSV reader; answers serialized with orjson.

The small fields of a body are still validated by the pydantic model the route documents; only the
bulky ``features`` / ``records`` / ``labels`` bypass it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..data.columns import Columns
from ..data.tables import read_feature_csv
from ..errors import InvalidInputError
from . import examples

M = TypeVar("M", bound=BaseModel)

_INLINE_PARSE_BYTES = 1_000_000

BULK_FIELDS = ("features", "records", "labels")


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a 422 that says why it is not one."""
    return await parse_json_object(await request.body())


async def parse_json_object(raw: bytes, hint: str = "") -> dict[str, Any]:
    """``raw`` as a JSON object, or a 422 that says why it is not one (``hint``: added when it is not JSON)."""
    if not raw:
        raise InvalidInputError("the request body is empty: send a JSON object")
    try:
        # Big bodies are parsed in a worker thread so the event loop keeps serving other requests.
        obj = orjson.loads(raw) if len(raw) < _INLINE_PARSE_BYTES else await run_in_threadpool(orjson.loads, raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"the body is not valid JSON: {exc}{hint}") from None
    if not isinstance(obj, dict):
        raise InvalidInputError(f"the body must be a JSON object, not {type(obj).__name__}")
    return obj


#: Media types read as CSV by the scoring routes (anything else is read as JSON).
CSV_MEDIA_TYPES = frozenset({"text/csv", "application/csv"})

#: The ``text/csv`` entry of a scoring route's documented request body.
CSV_BODY: dict[str, Any] = {
    "schema": {"type": "string", "description": "A header row naming the model's features (any order), then one "
               "row of numbers per sample."},
    "examples": {"rows": {"summary": "A header row of the demo model's features, then two rows (with `?model=`)",
                          "value": examples.CSV_ROWS}},
}


def is_csv(request: Request) -> bool:
    """Whether the body is declared as CSV (``Content-Type: text/csv``, parameters such as charset allowed)."""
    return is_csv_type(request.headers.get("content-type", ""))


def is_csv_type(content_type: str) -> bool:
    """Whether a ``Content-Type`` value names CSV."""
    return content_type.split(";", 1)[0].strip().lower() in CSV_MEDIA_TYPES


async def read_csv_matrix(request: Request, feature_names: Sequence[str], max_rows: int | None,
                          columns: Columns | None = None) -> np.ndarray:
    """A CSV body as rows in the model's feature order (the header names the columns), or a 422 that says why not;
    ``columns``: a mixed-type model's (text, booleans and empty cells read as its columns' kinds)."""
    raw = await request.body()
    if not raw:
        raise InvalidInputError("the request body is empty: send a CSV with a header row and data rows")
    if len(raw) < _INLINE_PARSE_BYTES:
        return read_feature_csv(raw, feature_names, max_rows, columns=columns)
    return await run_in_threadpool(partial(read_feature_csv, columns=columns), raw, feature_names, max_rows)


def validate_envelope(model: type[M], obj: dict[str, Any]) -> tuple[M, dict[str, Any]]:
    """Validate everything but the bulky fields with ``model``; return it and the bulky fields as sent."""
    bulk = {k: obj[k] for k in BULK_FIELDS if k in obj}
    light = {k: v for k, v in obj.items() if k not in bulk}
    fields = model.model_fields
    placeholders = {k: ([] if k == "labels" else None) for k in bulk if k in fields}
    unexpected = [k for k in bulk if k not in fields]
    if unexpected:
        light.update({k: bulk[k] for k in unexpected})  # let the model's extra="forbid" report them
    envelope = model.model_validate({**light, **placeholders})
    if "labels" in fields and fields["labels"].is_required() and "labels" not in bulk:
        raise InvalidInputError("`labels` is required: one label per row", {"field": "labels"})
    return envelope, bulk


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize with orjson (numpy arrays included) straight into a response."""
    return Response(
        json_bytes(payload),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def json_bytes(payload: Any) -> bytes:
    """``payload`` as JSON; numpy arrays are written as nested lists."""
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def openapi_body(
    model: type[BaseModel], *, multipart: dict[str, Any] | None = None, csv: bool = False,
    json_examples: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON body of a route that parses its body itself
    (with ``csv``, a ``text/csv`` body is documented too; ``json_examples``: the JSON body's named examples)."""
    content: dict[str, Any] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}
    if json_examples:
        content["application/json"]["examples"] = json_examples
    if multipart is not None:
        content["multipart/form-data"] = {"schema": multipart}
    if csv:
        content["text/csv"] = CSV_BODY
    DOCUMENTED_BODIES.add(model)
    return {"requestBody": {"required": True, "content": content}}


#: Models referenced by :func:`openapi_body`, added to the OpenAPI components by the app factory.
DOCUMENTED_BODIES: set[type[BaseModel]] = set()
