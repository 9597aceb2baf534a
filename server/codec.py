"""Request/response bodies: JSON (curl, notebooks) and msgpack (robots) -> a checked observation.

JSON observation values, per input (see ``GET /v1/metadata`` for names, shapes and dtypes):

* a string: a base64 PNG or JPEG (optionally a ``data:image/...;base64,`` URL) — image inputs only;
* nested lists of numbers, cast to the input's dtype (integers must be whole and in range);
* ``{"__numpy__": <base64 raw bytes>, "dtype": "<f4", "shape": [...]}`` (json-numpy, as used by
  OpenVLA's deploy script).

The msgpack body is the same envelope with arrays as raw bytes (:mod:`stare_robot.wire`).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from stare_robot.server.errors import ApiError
from stare_robot.server.validation import describe, field, validate_observation

from stare_robot import keys, wire
from stare_robot.policies.base import ArraySpec, PolicyMetadata

JSON_CONTENT_TYPE = "application/json"
IMAGE_FORMATS = ("PNG", "JPEG")


def is_image(spec: ArraySpec) -> bool:
    return spec.dtype == "uint8" and len(spec.shape) == 3 and spec.shape[-1] == 3


def _decode_image(key: str, text: str, spec: ArraySpec) -> np.ndarray:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(422, f"{field(key)}: not valid base64 ({e})") from None
    try:
        img = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ApiError(422, f"{field(key)}: could not decode image; expected base64 PNG or JPEG "
                            f"({type(e).__name__})") from None
    if img.format not in IMAGE_FORMATS:
        raise ApiError(422, f"{field(key)}: image format {img.format}, expected PNG or JPEG")
    height, width = spec.shape[0], spec.shape[1]
    # size is known from the header: refuse before decoding pixels (no decompression bombs)
    if img.size != (width, height):
        raise ApiError(422, f"{field(key)}: expected shape {tuple(spec.shape)}, got image "
                            f"{img.size[1]}x{img.size[0]} (height x width)")
    if img.mode != "RGB":
        raise ApiError(422, f"{field(key)}: image mode {img.mode}, expected RGB (8-bit, 3 channels)")
    try:
        return np.asarray(img, dtype=np.uint8).copy()
    except (OSError, ValueError, SyntaxError) as e:
        raise ApiError(422, f"{field(key)}: could not decode image ({e})") from None


def _from_lists(key: str, value: list, spec: ArraySpec) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except ValueError:
        raise ApiError(422, f"{field(key)}: nested lists are ragged or too deep; expected {describe(spec)}") \
            from None
    if arr.dtype.kind not in "biuf":
        raise ApiError(422, f"{field(key)}: nested lists must hold only numbers")
    if tuple(arr.shape) != tuple(spec.shape):
        raise ApiError(422, f"{field(key)}: expected shape {tuple(spec.shape)}, "
                            f"got {tuple(arr.shape)}")
    target = np.dtype(spec.dtype)
    if target.kind in "iu":
        if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise ApiError(422, f"{field(key)}: expected whole numbers for dtype {spec.dtype}")
        info = np.iinfo(target)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise ApiError(422, f"{field(key)}: values must lie in [{info.min}, {info.max}] "
                                f"for dtype {spec.dtype}")
    return arr.astype(target)


def decode_json_value(key: str, value: Any, spec: ArraySpec) -> np.ndarray:
    """One JSON observation value -> numpy array of the input's dtype (shape checked later)."""
    if isinstance(value, str):
        if not is_image(spec):
            raise ApiError(422, f"{field(key)}: a string is accepted only for image inputs; "
                                f"send nested lists for this {describe(spec)}")
        return _decode_image(key, value, spec)
    if isinstance(value, list):
        return _from_lists(key, value, spec)
    if isinstance(value, dict) and "__numpy__" in value:
        try:
            raw = base64.b64decode(value["__numpy__"], validate=True)
        except (binascii.Error, ValueError, TypeError) as e:
            raise ApiError(422, f"{field(key)}: __numpy__ is not valid base64 ({e})") from None
        try:
            return wire.array_from_buffer(raw, value.get("dtype"), value.get("shape"))
        except wire.WireError as e:
            raise ApiError(422, f"{field(key)}: {e}") from None
    raise ApiError(422, f"{field(key)}: expected {describe(spec)} as nested lists"
                        f"{', a base64 PNG/JPEG string' if is_image(spec) else ''} or a "
                        f"json-numpy object, got {type(value).__name__}")


def _envelope(body: Any) -> tuple[Any, Any]:
    if not isinstance(body, dict):
        raise ApiError(422, f"body must be an object with an '{keys.WIRE_OBSERVATION}' field, "
                            f"got {type(body).__name__}")
    unknown = [k for k in body if k not in (keys.WIRE_OBSERVATION, keys.WIRE_REQUEST_ID)]
    if unknown:
        raise ApiError(422, f"body has unknown field(s) {unknown}; valid: "
                            f"['{keys.WIRE_OBSERVATION}', '{keys.WIRE_REQUEST_ID}']")
    if keys.WIRE_OBSERVATION not in body:
        raise ApiError(422, f"body is missing the '{keys.WIRE_OBSERVATION}' field")
    return body[keys.WIRE_OBSERVATION], body.get(keys.WIRE_REQUEST_ID)


def decode_json_request(body: bytes, meta: PolicyMetadata) -> tuple[dict[str, Any], Any]:
    """JSON body -> (checked observation, client request id or None)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ApiError(400, f"body is not valid JSON ({e})") from None
    raw_obs, request_id = _envelope(parsed)
    if not isinstance(raw_obs, dict):
        return validate_observation(raw_obs, meta), request_id  # refuses it, in the common words
    # decode only what the policy reads; the validator reports what is missing, ignores the rest
    obs = {k: decode_json_value(k, raw_obs[k], spec) for k, spec in meta.inputs.items()
           if k in raw_obs}
    if keys.INSTRUCTION in raw_obs:
        obs[keys.INSTRUCTION] = raw_obs[keys.INSTRUCTION]
    return validate_observation(obs, meta), request_id


def decode_msgpack_request(body: bytes, meta: PolicyMetadata) -> tuple[dict[str, Any], Any]:
    """msgpack body -> (checked observation, client request id or None)."""
    try:
        parsed = wire.unpackb(body)
    except wire.WireError as e:
        raise ApiError(400, str(e)) from None
    raw_obs, request_id = _envelope(parsed)
    return validate_observation(raw_obs, meta), request_id


def decode_stream_frame(frame: bytes, meta: PolicyMetadata) -> dict[str, Any]:
    """One websocket frame (openpi: the observation dict itself, msgpack) -> checked observation."""
    try:
        parsed = wire.unpackb(frame)
    except wire.WireError as e:
        raise ApiError(400, str(e)) from None
    return validate_observation(parsed, meta)


def encode_json(payload: dict[str, Any]) -> bytes:
    """Response dict -> JSON bytes; arrays become nested lists (float32 round-trips exactly)."""
    return json.dumps(
        {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in payload.items()},
        separators=(",", ":"),
    ).encode()
