"""The rules of one V2 inference request, from its body to its answer: which outputs it asks for and how (JSON or
binary, at which threshold), whether its ``model_name`` / ``model_version`` agree with the path, the rows it
sends, and the answer's outputs. The route only strings these together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi.responses import Response
from numpy.typing import NDArray
from starlette.concurrency import run_in_threadpool

from ....errors import InvalidInputError, LogregError
from ....services.scoring import model_columns, predict, predict_proba
from ....store.registry import LoadedModel, ModelRegistry
from ...payloads import json_bytes, json_response, parse_json_object
from .binary import HEADER, MEDIA_TYPE, binary_flag, encode_tensor, split_body
from .schemas import OUTPUTS, Parameters, V2InferenceRequest
from .tensors import input_matrix, label_datatype, mixed_input_matrix, parse_infer_request


@dataclass(frozen=True)
class InferRequest:
    """A parsed inference request: its fields, each input's data, and what it asks for."""

    body: V2InferenceRequest
    data: list[Any]
    #: The outputs to answer, in order (both when the request names none).
    outputs: list[str]
    #: Those to answer as binary tensor data.
    binary: frozenset[str]
    #: The ``threshold`` request parameter, if any.
    threshold: float | None


async def read_infer_request(raw: bytes, header_length: str | None, max_rows: int) -> InferRequest:
    """A request body (JSON, or JSON then binary tensor data when ``header_length`` is given), checked."""
    head, binary = split_body(raw, header_length)
    hint = "" if binary is not None else (f" (a body with binary tensor data needs the {HEADER} header: the length "
                                          "of the JSON object the data follows)")
    obj = await parse_json_object(head, hint)
    body, data = parse_infer_request(obj, binary, max_rows)
    outputs = [o.name for o in body.outputs] if body.outputs else list(OUTPUTS)
    if len(set(outputs)) != len(outputs):
        raise InvalidInputError(f"`outputs` names an output twice: {outputs}")
    threshold = _threshold_parameter(body.parameters)
    if threshold is not None and "predict" not in outputs:
        raise InvalidInputError("parameter `threshold` applies to the `predict` output, which was not requested")
    every = binary_flag("parameters", body.parameters, "binary_data_output")
    binary_outputs = set()
    for requested in body.outputs or []:
        where = f"output {requested.name!r}"
        if requested.parameters and requested.parameters.get("classification"):
            raise InvalidInputError(f"{where}: the classification extension is not supported; ask for "
                                    "`predict` (labels) or `predict_proba`")
        if requested.parameters and "shared_memory_region" in requested.parameters:
            raise InvalidInputError(f"{where}: the shared-memory extension is not supported")
        flag = binary_flag(where, requested.parameters, "binary_data")
        if flag if flag is not None else every:
            binary_outputs.add(requested.name)
    if every and not body.outputs:
        binary_outputs.update(outputs)
    return InferRequest(body, data, outputs, frozenset(binary_outputs), threshold)


def _threshold_parameter(parameters: Parameters | None) -> float | None:
    value = (parameters or {}).get("threshold")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInputError(f"parameter `threshold` must be a number from 0 to 1, not {value!r}")
    return float(value)


async def check_model_fields(body: V2InferenceRequest, name: str, version: str | None, loaded: LoadedModel,
                             registry: ModelRegistry) -> None:
    """The body's ``model_name`` and ``model_version``, when given, must name what the path serves (a version
    number or an alias of the version the path resolved to)."""
    if body.model_name is not None and body.model_name != name:
        raise InvalidInputError(f"`model_name` {body.model_name!r} in the body does not match the model of the path, "
                                f"{name!r}", {"model_name": body.model_name, "path": name})
    asked = body.model_version
    if asked is None or asked in (version, str(loaded.version)):
        return
    try:
        same = await run_in_threadpool(registry.resolve, name, asked) == loaded.version
    except LogregError:  # not a version or alias of this model
        same = False
    if not same:
        path = f"version {version!r}" if version is not None else "no version"
        raise InvalidInputError(
            f"`model_version` {asked!r} in the body does not match the version the path serves ({path}, which is "
            f"version {loaded.version}); name the version in the path: /v2/models/{name}/versions/{asked}/infer",
            {"model_version": asked, "served": str(loaded.version)})


def request_rows(request: InferRequest, loaded: LoadedModel, max_rows: int) -> NDArray[np.float64]:
    """The rows the request's inputs send, as the version reads them (numbers, or a mixed-type table's cells)."""
    kinds = model_columns(loaded)
    if kinds is None:
        return input_matrix(request.body.inputs, request.data, loaded.metadata.feature_names, max_rows)
    return mixed_input_matrix(request.body.inputs, request.data, kinds, max_rows)


def score(request: InferRequest, loaded: LoadedModel, X: NDArray[np.float64]
          ) -> tuple[list[dict[str, Any]], Parameters | None, NDArray[np.intp]]:
    """The requested outputs (in order), the response parameters (the threshold used), and each row's class index
    (the label given, else the most probable class)."""
    n, classes = X.shape[0], loaded.model.classes_
    outputs: dict[str, dict[str, Any]] = {}
    parameters: Parameters | None = None
    index: NDArray[np.intp] = np.zeros(0, dtype=np.intp)
    if "predict_proba" in request.outputs:
        proba = predict_proba(loaded, X)
        index = proba.argmax(axis=1)
        outputs["predict_proba"] = {"name": "predict_proba", "shape": [n, proba.shape[1]], "datatype": "FP64",
                                    "data": proba.ravel()}
    if "predict" in request.outputs:
        labels, used, index = predict(loaded, X, request.threshold)
        outputs["predict"] = {"name": "predict", "shape": [n], "datatype": label_datatype(classes.tolist()),
                              "data": labels}
        if used is not None:
            parameters = {"threshold": used}
    return [outputs[o] for o in request.outputs], parameters, index


def infer_answer(response: dict[str, Any], binary: frozenset[str]) -> Response:
    """The response: JSON, or with outputs in ``binary`` the JSON object (those outputs carrying
    ``binary_data_size`` instead of ``data``) followed by their bytes, its length in the header."""
    if not binary:
        return json_response(response)
    blobs = []
    outputs = []
    for output in response["outputs"]:
        if output["name"] in binary:
            blob = encode_tensor(output["datatype"], output["data"])
            blobs.append(blob)
            output = {k: v for k, v in output.items() if k != "data"}
            output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(blob)}
        outputs.append(output)
    head = json_bytes({**response, "outputs": outputs})
    return Response(b"".join([head, *blobs]), media_type=MEDIA_TYPE, headers={HEADER: str(len(head))})

