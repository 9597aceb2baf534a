"""The binary wire format: msgpack, with numpy arrays as raw bytes + dtype + shape.

Byte-compatible with openpi's ``openpi_client.msgpack_numpy``: an array travels as the map
``{b"__ndarray__": True, b"data": <bytes>, b"dtype": "<f4", b"shape": [..]}`` and a numpy scalar as
``{b"__npgeneric__": True, b"data": <python scalar>, b"dtype": ...}``. So robot code written for
openpi's client talks to this server unchanged, and this module is all our own client needs.

Decoding never unpickles and never builds object/void arrays: only bool, integer and float dtypes
are accepted, and the byte count must match dtype x shape exactly. Imports only numpy + msgpack
(the light client and the ROS nodes import it without torch or FastAPI).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import msgpack
import numpy as np

MSGPACK_CONTENT_TYPE = "application/msgpack"
# other names clients use for the same thing
MSGPACK_CONTENT_TYPES = frozenset(
    {MSGPACK_CONTENT_TYPE, "application/x-msgpack", "application/vnd.msgpack"}
)

ALLOWED_DTYPE_KINDS = "biuf"  # bool, signed int, unsigned int, float
MAX_NDIM = 8

_ND = "__ndarray__"
_NG = "__npgeneric__"


class WireError(ValueError):
    """Bytes that are not well-formed msgpack-numpy (the client's mistake: HTTP 400)."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        _check_dtype(obj.dtype)
        return {
            b"__ndarray__": True,
            b"data": np.ascontiguousarray(obj).tobytes(),
            b"dtype": obj.dtype.str,
            b"shape": list(obj.shape),
        }
    if isinstance(obj, np.generic):
        _check_dtype(obj.dtype)
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot encode {type(obj).__name__} as msgpack")


def packb(obj: Any) -> bytes:
    """Python/numpy object (dicts, lists, str, numbers, arrays) -> msgpack bytes."""
    return msgpack.packb(obj, default=_encode, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """msgpack bytes -> Python object with arrays restored; raises :class:`WireError`."""
    try:
        return msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=True)
    except WireError:
        raise
    except Exception as e:  # noqa: BLE001 (msgpack raises many unrelated types for bad input)
        raise WireError(f"body is not valid msgpack: truncated or corrupt ({type(e).__name__}: "
                        f"{e})") from None


# openpi packs the field names as bytes; accept str names too (both spellings, made once)
_NAMES = {name: (name, name.encode()) for name in (_ND, _NG, "data", "dtype", "shape")}


def _get(d: dict, name: str) -> Any:
    as_str, as_bytes = _NAMES[name]
    value = d.get(as_str)
    return d.get(as_bytes) if value is None else value


def _decode(d: dict) -> Any:
    if _get(d, _ND) is not None:
        return array_from_buffer(_get(d, "data"), _get(d, "dtype"), _get(d, "shape"))
    if _get(d, _NG) is not None:
        dtype = parse_dtype(_get(d, "dtype"))
        value = _get(d, "data")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WireError(f"numpy scalar data must be a number, got {type(value).__name__}")
        try:
            return dtype.type(value)
        except (OverflowError, ValueError) as e:
            raise WireError(f"numpy scalar {value!r} does not fit {dtype.name}: {e}") from None
    return d


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in ALLOWED_DTYPE_KINDS or dtype.fields is not None or dtype.shape != ():
        raise WireError(
            f"unsupported dtype {dtype.str!r}; only bool, integer and float arrays are accepted"
        )


def parse_dtype(spec: Any) -> np.dtype:
    """A dtype string such as ``"<f4"``/``"uint8"`` -> numpy dtype, refusing object/void/structs."""
    if isinstance(spec, bytes):
        spec = spec.decode("ascii", "replace")
    if not isinstance(spec, str) or not spec or len(spec) > 16:
        raise WireError(f"array dtype must be a short string such as '<f4', got {spec!r}")
    return _checked_dtype(spec)


@functools.lru_cache(maxsize=64)  # a robot sends the same few dtypes in every request
def _checked_dtype(spec: str) -> np.dtype:
    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError) as e:
        raise WireError(f"unknown array dtype {spec!r}: {e}") from None
    _check_dtype(dtype)
    return dtype


def array_from_buffer(data: Any, dtype_spec: Any, shape: Any) -> np.ndarray:
    """Raw bytes + dtype + shape -> a fresh, writable, native-byte-order array."""
    dtype = parse_dtype(dtype_spec)
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM:
        raise WireError(f"array shape must be a list of at most {MAX_NDIM} ints, got {shape!r}")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise WireError(f"array shape must hold non-negative ints, got {list(shape)!r}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"array data must be bytes, got {type(data).__name__}")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise WireError(
            f"array data has {len(data)} bytes but dtype {dtype.str} x shape {list(shape)} "
            f"needs {expected}"
        )
    arr = np.frombuffer(data, dtype=dtype).reshape(shape)
    return arr.copy() if dtype.isnative else arr.astype(dtype.newbyteorder("="))
