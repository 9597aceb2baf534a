"""The msgpack-numpy wire format: exact round trips, openpi byte-compatibility, refusals."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from openpi_client import msgpack_numpy as openpi_msgpack

from stare_robot import wire

DTYPES = st.sampled_from(["bool", "uint8", "int16", "int32", "int64", "float16", "float32",
                          "float64", ">f4", "<i8"])


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(dtype=DTYPES, shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=5)))
def test_arrays_round_trip_bit_exactly_in_both_directions_with_openpi(arr):
    for pack, unpack in [(wire.packb, wire.unpackb), (openpi_msgpack.packb, wire.unpackb),
                         (wire.packb, openpi_msgpack.unpackb)]:
        out = unpack(pack({"x": arr}))["x"]
        assert out.shape == arr.shape and out.dtype.name == arr.dtype.name
        native = arr.dtype.newbyteorder("=")
        assert out.astype(native).tobytes() == arr.astype(native).tobytes()  # NaN payloads too


def test_numpy_scalars_and_nesting_survive():
    msg = {"a": np.float32(1.5), "b": [np.arange(3, dtype=np.int16)], "c": "text", "d": {"e": 2}}
    out = wire.unpackb(openpi_msgpack.packb(msg))
    assert out["a"] == np.float32(1.5) and out["a"].dtype == np.float32
    np.testing.assert_array_equal(out["b"][0], np.arange(3, dtype=np.int16))
    assert out["c"] == "text" and out["d"] == {"e": 2}


def test_decoded_arrays_are_writable_and_native_endian():
    out = wire.unpackb(wire.packb(np.arange(4, dtype=">f4")))
    out[0] = 7.0  # a policy may normalise in place
    assert out.dtype.byteorder in ("=", "<") and out[0] == 7.0


def _raw_array(data: bytes, dtype, shape) -> bytes:
    return msgpack.packb({b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape})


@pytest.mark.parametrize("frame, message", [
    (_raw_array(b"\0" * 8, "|O", [1]), "unsupported dtype"),
    (_raw_array(b"\0" * 8, "V8", [1]), "unsupported dtype"),
    (_raw_array(b"\0" * 8, "[('a','<f4')]", [1]), "dtype"),
    (_raw_array(b"\0" * 7, "<f4", [2]), "needs 8"),
    (_raw_array(b"\0" * 8, "<f4", [-2]), "non-negative"),
    (_raw_array(b"\0" * 8, "nope", [2]), "unknown array dtype"),
    (_raw_array("text", "<f4", [1]), "must be bytes"),
    (b"\xc1", "not valid msgpack"),
    (b"\x92\x01", "not valid msgpack"),
])
def test_malformed_frames_are_refused_with_a_reason(frame, message):
    with pytest.raises(wire.WireError, match=message):
        wire.unpackb(frame)


def test_object_arrays_are_never_encoded():
    with pytest.raises(wire.WireError, match="unsupported dtype"):
        wire.packb(np.array([object()]))
