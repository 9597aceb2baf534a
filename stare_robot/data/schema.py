"""On-disk layout of an episode store and the small rules shared by its reader and writer.

A store is a directory::

    <root>/zarr.json                 zarr group; attrs: stare_format, stare_schema_version, task, ...
    <root>/episodes/zarr.json        zarr group listing the committed episodes
    <root>/episodes/episode_000000   -> ../versions/<uuid>   (relative symlink = the commit)
    <root>/versions/<uuid>/          one zarr group per written episode version
    <root>/.lock                     flock for commits, updates and clean-ups

An episode version is written privately under ``versions/`` and becomes visible to readers only
when a symlink in ``episodes/`` points at it. Creating that symlink is atomic and fails if the
name is taken, so it both publishes the episode and allocates its number. A version no symlink
points at (a crashed writer, or the old side of an update) is never listed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stare_robot.data.errors import StoreError

FORMAT_NAME = "stare-robot-episodes"  # value of keys.STORE_FORMAT
SCHEMA_VERSION = 1  # value of keys.STORE_SCHEMA_VERSION; bump on incompatible layout changes

EPISODES_DIR = "episodes"
VERSIONS_DIR = "versions"
LOCK_FILE = ".lock"
METADATA_FILE = "zarr.json"  # zarr v3 node metadata; everything else in a version is chunk data

EPISODE_PREFIX = "episode_"
_EPISODE_RE = re.compile(r"^episode_(\d{6,})$")
_KEY_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

# Chunking: about this many uncompressed bytes per chunk along time; images at most this many
# frames per chunk so reading one frame decompresses little.
TARGET_CHUNK_BYTES = 1 << 20
MAX_IMAGE_FRAMES_PER_CHUNK = 16
MAX_STEPS_PER_CHUNK = 4096

# zstd level 1 on real ManiSkill3 128x128 renders: ~7.8x smaller, faster to write than no
# compression at all (benchmarks/store_throughput.py measures it against numpy.save).
ZSTD_LEVEL = 1

ALLOWED_DTYPE_KINDS = "biuf"  # bool, signed/unsigned int, float


def episode_id(number: int) -> str:
    return f"{EPISODE_PREFIX}{number:06d}"


def episode_number(name: str) -> int | None:
    """The number in ``episode_000123``, or None when ``name`` is not an episode id."""
    match = _EPISODE_RE.match(name)
    return int(match.group(1)) if match else None


def time_chunk_len(step_shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Steps per chunk along time for an array whose one-step shape is ``step_shape``."""
    step_bytes = max(1, math.prod(step_shape) * np.dtype(dtype).itemsize)
    steps = max(1, TARGET_CHUNK_BYTES // step_bytes)
    is_image = len(step_shape) >= 2
    return min(steps, MAX_IMAGE_FRAMES_PER_CHUNK if is_image else MAX_STEPS_PER_CHUNK)


def storable_array(key: object, raw: object, where: str) -> np.ndarray:
    """``raw`` as an array under a valid ``key``, or a StoreError saying which (``where`` names the
    place, e.g. "step 0, key 'obs/state'")."""
    check_array_key(key)
    value = np.asarray(raw)
    if value.dtype.kind not in ALLOWED_DTYPE_KINDS:
        raise StoreError(
            f"{where}: dtype {value.dtype} is not storable; use bool, integer or float arrays "
            "(strings belong in episode attrs)"
        )
    return value


def check_array_key(key: object) -> str:
    """Validate an array key such as ``obs/base_camera/rgb``; returns it or raises StoreError."""
    if not isinstance(key, str) or not key:
        raise StoreError(f"array keys must be non-empty strings, got {key!r}")
    parts = key.split("/")
    if not all(_KEY_PART_RE.match(p) for p in parts):
        raise StoreError(
            f"bad array key {key!r}: use '/'-separated parts of letters, digits, '_', '-', '.', "
            "not starting with '.' (e.g. 'obs/base_camera/rgb')"
        )
    return key


def nested_key_conflicts(keys: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs (a, b) where array ``a`` would also have to be the group holding ``b``."""
    key_set = set(keys)
    out = []
    for key in keys:
        parts = key.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in key_set:
                out.append((prefix, key))
    return out


def to_json_attrs(attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Attrs as plain JSON values (numpy scalars/arrays, tuples and paths converted).

    Raises StoreError naming the offending attr when a value cannot be stored as JSON.
    """
    out = {}
    for name, value in attrs.items():
        if not isinstance(name, str):
            raise StoreError(f"{where}: attribute names must be strings, got {name!r}")
        try:
            out[name] = _to_json(value)
        except TypeError as err:
            raise StoreError(
                f"{where}: attribute {name!r} = {value!r} cannot be stored as JSON ({err}); "
                "use str, int, float, bool, None, lists or dicts of those"
            ) from None
    return out


def _to_json(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError("NaN/inf are not valid JSON")
        return value
    if isinstance(value, np.generic):
        return _to_json(value.item())
    if isinstance(value, np.ndarray):
        return _to_json(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("dict keys must be strings")
        return {k: _to_json(v) for k, v in value.items()}
    raise TypeError(f"unsupported type {type(value).__name__}")
