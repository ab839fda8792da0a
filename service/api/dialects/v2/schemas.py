"""The V2 / Open Inference Protocol's JSON, as pydantic models for the OpenAPI page and the request's light
fields (the bulky tensor ``data`` is decoded by :mod:`.tensors`, not item by item)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ....domain import Label

V2_TAG = "open inference protocol (v2)"

#: The name the model metadata gives the single matrix input (KServe's examples send ``input-0``).
MATRIX_INPUT = "input-0"
PLATFORM = "logreg-service"
OUTPUTS = ("predict", "predict_proba")

#: Request datatypes: numbers for every model; BOOL and BYTES (text) for the columns of mixed-type models.
Datatype = Literal["FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8",
                   "BOOL", "BYTES"]
Parameters = dict[str, str | int | float | bool]


class V2Error(BaseModel):
    """The protocol's error answer."""

    error: str = Field(description="What went wrong.", examples=["model 'x' not found"])


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dimension of any size (the rows).")


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str] = Field(description="Versions of the model (all of them, or the one asked for).")
    platform: str
    inputs: list[V2MetadataTensor] = Field(
        description=f"One `[-1, features]` tensor (`{MATRIX_INPUT}`; any input name is accepted). Alternatively "
        "send one input per feature, named as in `feature_names`, each of shape `[rows]` or `[rows, 1]`."
    )
    outputs: list[V2MetadataTensor]
    feature_names: list[str] = Field(description="Extension: the model's features, in column order.")
    classes: list[Label] = Field(description="Extension: the class labels, the column order of `predict_proba`.")


class V2RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description=f"`{MATRIX_INPUT}` (any name) for a `[rows, features]` tensor, or a feature name.")
    shape: list[Annotated[int, Field(ge=0)]] = Field(description="`[rows, features]`; per feature `[rows]`.")
    datatype: Datatype
    parameters: Parameters | None = Field(
        None, description="`binary_data_size`: the input's bytes after the JSON object (binary tensor data "
        "extension), instead of `data`; other parameters are ignored.",
    )
    data: list[Any] | None = Field(
        None, description="Numbers (text for BYTES, true/false for BOOL), nested as `shape` says or flat in "
        "row-major order; omitted when the parameter `binary_data_size` says the data follows the JSON.",
    )


class V2RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["predict", "predict_proba"]
    parameters: Parameters | None = Field(
        None, description="`binary_data`: answer this output as binary tensor data after the JSON object.",
    )


class V2InferenceRequest(BaseModel):
    """An inference request of the V2 protocol. Fields other than these are ignored, as the protocol allows;
    an input with a field other than its own is refused."""

    model_config = ConfigDict(extra="ignore")  # examples: on the route (service.api.examples)

    id: str | None = Field(None, description="Echoed in the response.")
    model_name: str | None = Field(None, description="When given, the model of the path (400 otherwise).")
    model_version: str | None = Field(
        None, description="When given, the version the path serves: the path's version or alias, or the version "
        "number it resolves to (400 otherwise).",
    )
    parameters: Parameters | None = Field(
        None, description="Extension: `threshold` (0..1) for the `predict` output of a binary model; "
        "`binary_data_output`: answer every output as binary tensor data; other parameters are ignored.",
    )
    inputs: list[V2RequestInput] = Field(min_length=1)
    outputs: list[V2RequestOutput] | None = Field(None, description="Default: `predict` and `predict_proba`.")


class V2ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = Field(None, description="`binary_data_size` when the data is binary.")
    data: list[Label | float] | None = Field(None, description="Flat, row-major; omitted when binary.")


class V2InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    parameters: Parameters | None = None
    outputs: list[V2ResponseOutput]


V2_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "model": V2Error}
    for status, text in (
        (400, "Invalid request: the message says what and where"),
        (401, "An API key is required (`Authorization: Bearer <key>`)"),
        (403, "The API key is not valid"),
        (404, "Unknown model, version or alias"),
        (409, "A stored version failed its integrity check"),
        (413, "Body or batch over the configured limits"),
        (415, "A `Content-Encoding` other than gzip or deflate"),
        (503, "The registry directory cannot be read"),
    )
}
