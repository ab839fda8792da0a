"""The binary tensor data extension of the V2 protocol (Triton's ``binary_tensor_data``; KServe's clients speak it).

A body with binary data is the JSON object, then each binary tensor's bytes in the order of the tensors in the
JSON; the ``Inference-Header-Content-Length`` header gives the JSON's length. A tensor sent or answered as
binary carries the ``binary_data_size`` parameter (its bytes) instead of ``data``. Tensor bytes are
little-endian, row-major, without padding: each number in its native size, BOOL one byte (1 true, 0 false),
BYTES each element a 4-byte unsigned length followed by that many bytes (text is UTF-8). A requested output
is answered as binary when its ``binary_data`` parameter is true, or, without it, when the request's
``binary_data_output`` parameter is.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ....data.matrix import check_row_limit
from ....errors import InvalidInputError

#: The name ``GET /v2`` lists among its extensions.
EXTENSION = "binary_tensor_data"
#: Header giving the length of the JSON object that starts a body with binary tensor data.
HEADER = "Inference-Header-Content-Length"
#: The media type of an answer with binary tensor data.
MEDIA_TYPE = "application/octet-stream"

#: Datatypes of a fixed size, as little-endian numpy dtypes (BOOL: one byte, 0 or 1).
FIXED_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code) for name, code in (
        ("BOOL", "u1"), ("INT8", "i1"), ("INT16", "<i2"), ("INT32", "<i4"), ("INT64", "<i8"), ("UINT8", "u1"),
        ("UINT16", "<u2"), ("UINT32", "<u4"), ("UINT64", "<u8"), ("FP16", "<f2"), ("FP32", "<f4"), ("FP64", "<f8"),
    )
}
_LENGTH = struct.Struct("<I")


def split_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes | None]:
    """The JSON object of a body and the binary data after it (None without the header: all JSON)."""
    if header_length is None:
        return raw, None
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 <= n <= len(raw):
        raise InvalidInputError(f"{HEADER} must be the length of the JSON object that starts the body, from 0 to "
                                f"{len(raw)} (the body's length), not {header_length!r}")
    return raw[:n], raw[n:]


def binary_size(where: str, parameters: Any) -> int | None:
    """The ``binary_data_size`` parameter of a tensor, checked; None when the tensor's data is JSON."""
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidInputError(f"{where}: parameter `binary_data_size` must be a whole number of bytes, not {size!r}")
    return size


def decode_tensor(name: str, datatype: str, shape: Sequence[int], raw: bytes, max_rows: int) -> Any:
    """One input's binary data as its values: a numpy array of ``shape`` for numbers, booleans for BOOL, a flat
    list of text for BYTES."""
    where = f"input {name!r}"
    if shape:
        check_row_limit(shape[0], max_rows, name)
    count = math.prod(shape)
    if datatype == "BYTES":
        return _decode_bytes(where, count, raw)
    dtype = FIXED_DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise InvalidInputError(
            f"{where}: {len(raw)} bytes of binary data, but {count} {datatype} values of shape {list(shape)} take "
            f"{count * dtype.itemsize}", {"binary_data_size": len(raw), "expected": count * dtype.itemsize})
    values = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if datatype == "BOOL":
        if values.size and values.max() > 1:
            raise InvalidInputError(f"{where}: BOOL binary data holds bytes other than 0 (false) and 1 (true)")
        return values.astype(bool)
    return values


def _decode_bytes(where: str, count: int, raw: bytes) -> list[str]:
    if count * _LENGTH.size > len(raw):
        raise InvalidInputError(f"{where}: {len(raw)} bytes of binary data cannot hold {count} BYTES elements "
                                "(each starts with a 4-byte length)")
    out: list[str] = []
    offset = 0
    for i in range(count):
        if offset + _LENGTH.size > len(raw):
            raise InvalidInputError(f"{where}: the binary data ends within element {i} of {count}")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise InvalidInputError(f"{where}: element {i} is {length} bytes long but the binary data ends sooner")
        try:
            out.append(raw[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInputError(f"{where}: element {i} is not UTF-8 text") from None
        offset += length
    if offset != len(raw):
        raise InvalidInputError(f"{where}: {len(raw) - offset} bytes of binary data are left after its {count} "
                                "BYTES elements")
    return out


def encode_tensor(datatype: str, data: Any) -> bytes:
    """An output's values as binary tensor data of ``datatype``."""
    if datatype == "BYTES":
        parts = [str(v).encode("utf-8") for v in data]
        return b"".join(_LENGTH.pack(len(p)) + p for p in parts)
    values: NDArray[Any] = np.asarray(data)
    if datatype == "BOOL":
        values = values.astype(bool)
    return np.ascontiguousarray(values, dtype=FIXED_DTYPES[datatype]).tobytes()


def binary_flag(where: str, parameters: Any, name: str) -> bool | None:
    """A boolean parameter (``binary_data``, ``binary_data_output``), checked; None when not given."""
    value = parameters.get(name) if isinstance(parameters, dict) else None
    if value is not None and not isinstance(value, bool):
        raise InvalidInputError(f"{where}: parameter `{name}` must be true or false, not {value!r}")
    return value
