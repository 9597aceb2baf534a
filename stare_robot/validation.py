"""The one set of rules for what goes into a policy (an observation) and what comes out (a chunk).

Every consumer uses these two checks, so a bad observation gets the same complaint in-process
(``Policy.predict`` via :func:`~stare_robot.policies.base.check_observation`), from the server
(as a 422), and from :class:`~stare_robot.client.PolicyClient` (before it sends anything); and a
chunk is held to the same rules by the server (what the model returned), the deploy executor and
the arm commander (what the robot is about to do).

Observation rules (:func:`validate_observation`):

* a mapping with string keys; every input of ``metadata.inputs`` present; **other keys are
  ignored** (a simulator's observation carries more than a policy reads) and are not passed on;
* each input: a numeric array (or nested lists of numbers) of exactly the declared shape;
  ``uint8`` inputs (images) must be exactly ``uint8``; other inputs take any int/float dtype that
  casts to the declared one within its kind (float64 -> float32 yes, float -> int no) and are cast;
* no NaN or inf anywhere;
* ``instruction``: a string of at most :data:`MAX_INSTRUCTION_CHARS` characters; present and not
  blank when ``metadata.instruction_required``.

Chunk rules (:func:`validate_chunk`): real numbers, shape ``(n >= 1, action_dim)`` (``n`` equal to
``chunk_size`` when given), all finite, optionally ``|a| <= max_abs``.

Numpy only (no torch), so the light client and the robot side import it freely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from stare_robot.keys import INSTRUCTION
from stare_robot.policies.base import ArraySpec, ObservationError, PolicyMetadata

MAX_INSTRUCTION_CHARS = 2048
NUMBER_KINDS = "iuf"  # signed, unsigned, float (bool is not a number here)


class ChunkError(ValueError):
    """An action chunk (or single action) that must not reach a robot."""


def field(key: str) -> str:
    """How messages name one observation entry: ``observation['obs/state']``."""
    return f"observation[{key!r}]"


def describe(spec: ArraySpec) -> str:
    return f"{spec.dtype} array of shape {tuple(spec.shape)}"


def _count_non_finite(arr: np.ndarray) -> int:
    return int(arr.size - np.count_nonzero(np.isfinite(arr)))


def _check_input(key: str, value: Any, spec: ArraySpec) -> np.ndarray:
    want = np.dtype(spec.dtype)
    try:
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (ValueError, TypeError):
        raise ObservationError(f"{field(key)}: nested lists are ragged; expected "
                               f"{describe(spec)}") from None
    if arr.dtype.kind not in NUMBER_KINDS:
        raise ObservationError(f"{field(key)}: expected {describe(spec)}, got "
                               f"{type(value).__name__} of dtype {arr.dtype.name}")
    if arr.shape != tuple(spec.shape):
        raise ObservationError(f"{field(key)}: got shape {arr.shape}, expected shape "
                               f"{tuple(spec.shape)}")
    if arr.dtype != want:
        # images are exact (a float image is a scaling bug); other inputs cast within their kind
        exact = want == np.uint8
        if exact or not np.can_cast(arr.dtype, want, casting="same_kind"):
            raise ObservationError(f"{field(key)}: expected dtype {spec.dtype}, got "
                                   f"{arr.dtype.name}")
        arr = arr.astype(want)
    if arr.dtype.kind == "f" and (bad := _count_non_finite(arr)):
        raise ObservationError(f"{field(key)}: contains {bad} non-finite value(s) (NaN or inf)")
    return arr


def _check_instruction(value: Any, metadata: PolicyMetadata) -> str:
    if not isinstance(value, str):
        raise ObservationError(f"{field(INSTRUCTION)}: expected a string (the language "
                               f"instruction), got {type(value).__name__}")
    if metadata.instruction_required and not value.strip():
        raise ObservationError(f"{field(INSTRUCTION)}: must not be empty for this policy")
    if len(value) > MAX_INSTRUCTION_CHARS:
        raise ObservationError(f"{field(INSTRUCTION)}: at most {MAX_INSTRUCTION_CHARS} "
                               f"characters, got {len(value)}")
    return value


def validate_observation(obs: Any, metadata: PolicyMetadata) -> dict[str, Any]:
    """``obs`` -> the clean observation a policy reads (declared inputs, cast, + instruction).

    Raises :class:`~stare_robot.policies.base.ObservationError` naming every missing input, or the
    first wrong one; see the module docstring for the rules."""
    if not isinstance(obs, Mapping):
        raise ObservationError(f"an observation must be a dict keyed by input name, got "
                               f"{type(obs).__name__}")
    missing = [k for k in metadata.inputs if k not in obs]
    if metadata.instruction_required and INSTRUCTION not in obs:
        missing.append(INSTRUCTION)
    if missing:
        wants = [f"{k} ({describe(metadata.inputs[k])})" if k in metadata.inputs else f"{k} (string)"
                 for k in missing]
        got = sorted(str(k) for k in obs)
        raise ObservationError(f"observation is missing {', '.join(wants)}, which policy "
                               f"{metadata.name!r} needs; got keys {got}")
    clean: dict[str, Any] = {k: _check_input(k, obs[k], spec) for k, spec in metadata.inputs.items()}
    if INSTRUCTION in obs:
        clean[INSTRUCTION] = _check_instruction(obs[INSTRUCTION], metadata)
    return clean


def _numbers(value: Any, what: str) -> np.ndarray:
    try:
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (ValueError, TypeError) as err:
        raise ChunkError(f"{what} is not an array of numbers ({err})") from None
    if arr.dtype.kind not in NUMBER_KINDS:
        raise ChunkError(f"{what} must hold numbers, got dtype {arr.dtype.name}")
    return arr


def _check_values(arr: np.ndarray, what: str, max_abs: float | None) -> None:
    if bad := _count_non_finite(arr):
        raise ChunkError(f"{what} contains {bad} non-finite value(s) (NaN or infinite)")
    if max_abs is not None and arr.size and np.abs(arr).max() > max_abs:
        raise ChunkError(f"{what} has values beyond +-{max_abs:g}")


def validate_chunk(chunk: Any, action_dim: int, *, chunk_size: int | None = None,
                   max_abs: float | None = None, dtype: Any = np.float32) -> np.ndarray:
    """``chunk`` -> a finite ``(n, action_dim)`` array of ``dtype``; else :class:`ChunkError`.

    ``chunk_size`` (if given) fixes ``n``; otherwise any ``n >= 1`` is accepted."""
    arr = _numbers(chunk, "action chunk")
    rows = "n >= 1" if chunk_size is None else str(chunk_size)
    if (arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != action_dim
            or (chunk_size is not None and arr.shape[0] != chunk_size)):
        raise ChunkError(f"action chunk has shape {arr.shape}, expected ({rows}, {action_dim})")
    arr = arr.astype(dtype, copy=False)
    _check_values(arr, "action chunk", max_abs)
    return arr


def validate_action(action: Any, action_dim: int, *, max_abs: float | None = None,
                    dtype: Any = np.float64) -> np.ndarray:
    """One step of a chunk (any shape holding ``action_dim`` numbers) -> flat ``(action_dim,)``."""
    arr = _numbers(action, "action").reshape(-1)
    if arr.shape != (action_dim,):
        raise ChunkError(f"action must have {action_dim} values, got {arr.size}")
    arr = arr.astype(dtype, copy=False)
    _check_values(arr, "action", max_abs)
    return arr
