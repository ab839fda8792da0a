"""Decoding the V2 protocol's tensors: one ``[rows, features]`` input, or one input per feature, into the
rows to score; and the datatype that describes the labels a model answers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from ....data.columns import Columns
from ....data.matrix import check_row_limit, order_columns, refuse_booleans
from ....errors import InvalidInputError
from .binary import HEADER, binary_size, decode_tensor
from .schemas import V2InferenceRequest, V2RequestInput

#: Request datatypes taken as numbers, and the range of the integer ones.
INT_TYPES = {f"{p}INT{b}": (np.iinfo(f"{p.lower()}int{b}").min, np.iinfo(f"{p.lower()}int{b}").max)
              for p in ("", "U") for b in (8, 16, 32, 64)}

def label_datatype(classes: list[Any]) -> str:
    """The V2 datatype of labels like ``classes``."""
    if all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    return "BYTES"


def tensor(spec: V2RequestInput, data: Any, max_rows: int) -> NDArray[np.float64]:
    """A request input as a float64 array of its declared shape, with errors that name the input."""
    name, shape = spec.name, spec.shape
    where = f"input {name!r}"
    if spec.datatype in ("BOOL", "BYTES"):
        raise InvalidInputError(f"{where}: datatype {spec.datatype} is for models trained on mixed-type tables; this "
                                "model takes numbers (FP64, FP32, FP16, INT*, UINT*)")
    if not shape:
        raise InvalidInputError(f"{where} has an empty shape: send `[rows, features]` or, per feature, `[rows]`")
    check_row_limit(shape[0], max_rows, name)
    if isinstance(data, np.ndarray):  # binary tensor data, decoded already
        arr = data
    elif not isinstance(data, list):
        raise InvalidInputError(f"{where}: `data` must be a list of numbers (nested or flat)")
    else:
        try:
            arr = np.array(data)
        except (ValueError, TypeError, OverflowError):
            arr = None
    if arr is None or arr.dtype.kind not in "iuf" or (arr.size == 0 and arr.ndim > 1):
        raise InvalidInputError(
            f"{where}: `data` must hold numbers only ({spec.datatype}), nested as `shape` says or flat"
        )
    expected = math.prod(shape)
    if arr.size != expected:
        raise InvalidInputError(
            f"{where} has {arr.size} values but shape {shape} needs {expected}", {"shape": shape, "values": arr.size}
        )
    if arr.ndim > 1 and list(arr.shape) != shape:
        raise InvalidInputError(f"{where}: the nested data has shape {list(arr.shape)}, not {shape}")
    if arr.ndim <= 2 and isinstance(data, list):  # the shapes inputs take; true and false are not numbers here
        refuse_booleans(data if arr.ndim == 2 else [data], arr if arr.ndim == 2 else arr.reshape(1, -1), where)
    if spec.datatype in INT_TYPES:
        low, high = INT_TYPES[spec.datatype]
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise InvalidInputError(f"{where}: datatype {spec.datatype} needs integers")
        if arr.size and (arr.min() < low or arr.max() > high):
            raise InvalidInputError(f"{where}: values outside the range of {spec.datatype}")
    values = arr.astype(np.float64).reshape(shape)
    if not np.isfinite(values).all():
        raise InvalidInputError(f"{where} holds non-finite numbers")
    return values


def input_matrix(
    inputs: list[V2RequestInput], data: list[Any], feature_names: list[str], max_rows: int
) -> NDArray[np.float64]:
    """The rows to score: one ``[rows, features]`` tensor, or one ``[rows]`` / ``[rows, 1]`` input per feature."""
    d = len(feature_names)
    if len(inputs) == 1 and (inputs[0].name not in feature_names or d == 1):
        X = tensor(inputs[0], data[0], max_rows)
        if X.ndim == 1 and d == 1:
            X = X.reshape(-1, 1)
        if X.ndim != 2:
            raise InvalidInputError(
                f"input {inputs[0].name!r} has shape {inputs[0].shape}: send a [rows, {d}] tensor, or one input "
                f"per feature named {feature_names[:5]}{'...' if d > 5 else ''}"
            )
    else:
        columns = []
        for spec, values in zip(inputs, data, strict=True):
            col = tensor(spec, values, max_rows)
            if col.ndim == 2 and col.shape[1] == 1:
                col = col[:, 0]
            if col.ndim != 1:
                raise InvalidInputError(
                    f"input {spec.name!r} has shape {spec.shape}: with one input per feature, each has shape "
                    "[rows] or [rows, 1]"
                )
            columns.append(col)
        lengths = sorted({c.shape[0] for c in columns})
        if len(lengths) > 1:
            raise InvalidInputError(f"the inputs have different numbers of rows: {lengths}")
        X = order_columns(np.column_stack(columns), [s.name for s in inputs], feature_names, "the inputs")
    if X.shape[0] == 0:
        raise InvalidInputError("the inputs hold no rows")
    return X


#: Datatypes each kind of a mixed-type model's column takes (BYTES: text that reads as the kind).
KIND_DATATYPES = {"numeric": {"FP16", "FP32", "FP64", *INT_TYPES, "BYTES"}, "boolean": {"BOOL", "BYTES"},
                  "categorical": {"BYTES"}}


def _flat(spec: V2RequestInput, data: Any, max_rows: int) -> list[Any]:
    """An input's values as a flat list, after checking their count against its shape."""
    where = f"input {spec.name!r}"
    if not spec.shape:
        raise InvalidInputError(f"{where} has an empty shape: send `[rows, features]` or, per feature, `[rows]`")
    check_row_limit(spec.shape[0], max_rows, spec.name)
    if isinstance(data, np.ndarray):  # binary tensor data, decoded already
        data = data.ravel().tolist()
    if not isinstance(data, list):
        raise InvalidInputError(f"{where}: `data` must be a list (nested or flat)")
    flat: list[Any] = []
    stack = [data]
    while stack:  # depth-first, left to right: row-major order
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    expected = math.prod(spec.shape)
    if len(flat) != expected:
        raise InvalidInputError(f"{where} has {len(flat)} values but shape {spec.shape} needs {expected}",
                                {"shape": spec.shape, "values": len(flat)})
    return flat


def _cell(kind: str, value: Any, where: str) -> Any:
    """A BYTES cell (text) as the value its column's kind reads, empty text being a missing value (as in a CSV);
    other JSON values as they are."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "":
        return None
    if kind == "categorical":
        return value
    if kind == "boolean":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise InvalidInputError(f"{where}: {value!r} is not true or false")
    try:
        return float(text)
    except ValueError:
        raise InvalidInputError(f"{where}: {value!r} is not a number") from None


#: MLServer's content type of a column of JSON text, one element per cell: its pandas codec sends a column of
#: mixed Python values (text with missing cells, booleans with missing cells) so.
PD_JSON = "pd_json"


def _json_cells(name: str, cells: list[Any]) -> list[Any]:
    """The cells of a ``pd_json`` input: each element JSON text, read as its value (null: a missing cell)."""
    out = []
    for i, cell in enumerate(cells):
        try:
            out.append(orjson.loads(cell) if isinstance(cell, str) else cell)
        except orjson.JSONDecodeError:
            raise InvalidInputError(f"input {name!r} (content type {PD_JSON}): element {i}, {cell!r}, is not "
                                    "JSON") from None
    return out


def mixed_input_matrix(
    inputs: list[V2RequestInput], data: list[Any], kinds: Columns, max_rows: int
) -> NDArray[np.float64]:
    """The rows to score for a mixed-type model: one ``[rows, features]`` BYTES tensor (text per cell), or one
    input per feature whose datatype suits its column (numbers FP*/INT*, booleans BOOL, categories BYTES;
    BYTES text is read as its column's kind; nulls are missing values)."""
    names = kinds.names
    d = len(names)
    if len(inputs) == 1 and (inputs[0].name not in names or d == 1):
        spec = inputs[0]
        if len(spec.shape) != 2 or spec.shape[1] != d:
            raise InvalidInputError(f"input {spec.name!r} has shape {spec.shape}: send a [rows, {d}] tensor, or one "
                                    f"input per feature named {names[:5]}{'...' if d > 5 else ''}")
        flat = _flat(spec, data[0], max_rows)
        rows = spec.shape[0]
        columns = [[_cell(kinds.kind(n), flat[i * d + j], f"input {spec.name!r} column {n!r}")
                    for i in range(rows)] for j, n in enumerate(names)]
    else:
        by_name: dict[str, list[Any]] = {}
        for spec, values in zip(inputs, data, strict=True):
            if spec.name in names and spec.datatype not in KIND_DATATYPES[kinds.kind(spec.name)]:
                raise InvalidInputError(
                    f"input {spec.name!r} is a {kinds.kind(spec.name)} column; datatype {spec.datatype} does not "
                    f"suit it (use {sorted(KIND_DATATYPES[kinds.kind(spec.name)])})", {"input": spec.name})
            if len(spec.shape) > 2 or (len(spec.shape) == 2 and spec.shape[1] != 1):
                raise InvalidInputError(f"input {spec.name!r} has shape {spec.shape}: with one input per feature, "
                                        "each has shape [rows] or [rows, 1]")
            kind = kinds.kind(spec.name) if spec.name in names else "categorical"
            cells = _flat(spec, values, max_rows)
            if (spec.parameters or {}).get("content_type") == PD_JSON:
                cells = _json_cells(spec.name, cells)
            by_name[spec.name] = [_cell(kind, v, f"input {spec.name!r}") for v in cells]
        order_columns(np.empty((0, len(by_name))), list(by_name), names, "the inputs")
        lengths = sorted({len(c) for c in by_name.values()})
        if len(lengths) > 1:
            raise InvalidInputError(f"the inputs have different numbers of rows: {lengths}")
        columns = [by_name[n] for n in names]
    if not columns or not columns[0]:
        raise InvalidInputError("the inputs hold no rows")
    return kinds.json_matrix(columns, "the inputs")


def parse_infer_request(obj: dict[str, Any], binary: bytes | None, max_rows: int
                        ) -> tuple[V2InferenceRequest, list[Any]]:
    """The request's light fields validated, and each input's data: as sent in the JSON (not validated item by
    item), or decoded from ``binary``, the binary tensor data after the JSON object (None: there is none)."""
    raw_inputs = obj.get("inputs")
    data: list[Any] = []
    sizes: list[int | None] = []
    if isinstance(raw_inputs, list):
        light = []
        for i, item in enumerate(raw_inputs):
            if not isinstance(item, dict):
                raise InvalidInputError(f"inputs.{i}: each input must be an object")
            size = binary_size(f"inputs.{i}", item.get("parameters"))
            if size is not None and "data" in item:
                raise InvalidInputError(f"inputs.{i}: send `data` or the parameter `binary_data_size`, not both")
            if size is None and "data" not in item:
                raise InvalidInputError(f"inputs.{i}: `data` is required (or, with binary tensor data, the "
                                        "parameter `binary_data_size`)")
            if size is not None and binary is None:
                raise InvalidInputError(f"inputs.{i}: the parameter `binary_data_size` needs the {HEADER} header "
                                        "(the length of the JSON object the binary data follows)")
            data.append(item.get("data"))
            sizes.append(size)
            light.append({k: v for k, v in item.items() if k != "data"})
        obj = {**obj, "inputs": light}
    request = V2InferenceRequest.model_validate(obj)
    for spec in request.inputs:
        if spec.parameters and "shared_memory_region" in spec.parameters:
            raise InvalidInputError(f"input {spec.name!r}: the shared-memory extension is not supported; send the "
                                    "data in the body")
    if binary is not None:
        expected = sum(s for s in sizes if s is not None)
        if expected != len(binary):
            raise InvalidInputError(f"the body has {len(binary)} bytes of binary tensor data after the JSON object, "
                                    f"but the inputs' `binary_data_size` add up to {expected}",
                                    {"binary_bytes": len(binary), "binary_data_size": expected})
        offset = 0
        for i, (spec, size) in enumerate(zip(request.inputs, sizes, strict=True)):
            if size is not None:
                data[i] = decode_tensor(spec.name, spec.datatype, spec.shape, binary[offset : offset + size], max_rows)
                offset += size
    return request, data
