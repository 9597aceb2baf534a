"""Check one observation against the policy's metadata before it reaches the model.

Every refusal is an :class:`ApiError` 422 whose message names the observation field, what was
expected and what arrived, e.g.
``observation['obs/state']: expected shape (8,), got (7,)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from stare_robot.server.errors import ApiError

from stare_robot import keys, wire
from stare_robot.policies.base import ArraySpec, PolicyMetadata

MAX_INSTRUCTION_CHARS = 2048


def field(key: str) -> str:
    return f"{keys.WIRE_OBSERVATION}[{key!r}]"


def describe(spec: ArraySpec) -> str:
    return f"{spec.dtype} array of shape {tuple(spec.shape)}"


def check_keys(obs: Any, meta: PolicyMetadata) -> None:
    """The observation is a dict holding every input the policy reads and nothing else."""
    if not isinstance(obs, Mapping):
        raise ApiError(422, f"{keys.WIRE_OBSERVATION} must be an object/map of named inputs, "
                            f"got {type(obs).__name__}")
    expected = list(meta.inputs) + [keys.INSTRUCTION]
    for key in obs:
        if not isinstance(key, str):
            raise ApiError(422, f"{keys.WIRE_OBSERVATION} keys must be strings, got {key!r}")
    unknown = [k for k in obs if k not in meta.inputs and k != keys.INSTRUCTION]
    if unknown:
        raise ApiError(422, f"{keys.WIRE_OBSERVATION} has unknown field(s) {unknown}; "
                            f"valid fields are {expected}")
    missing = [k for k in meta.inputs if k not in obs]
    if meta.instruction_required and keys.INSTRUCTION not in obs:
        missing.append(keys.INSTRUCTION)
    if missing:
        wants = [f"{k} ({describe(meta.inputs[k])})" if k in meta.inputs else f"{k} (string)"
                 for k in missing]
        raise ApiError(422, f"{keys.WIRE_OBSERVATION} is missing field(s): {', '.join(wants)}")


def check_array(key: str, value: Any, spec: ArraySpec) -> np.ndarray:
    """Exact dtype, exact shape, finite numbers."""
    if not isinstance(value, np.ndarray):
        raise ApiError(422, f"{field(key)}: expected {describe(spec)}, got {type(value).__name__}")
    # dtype objects compare in C (.name is Python-level); parse_dtype caches them
    if value.dtype != wire.parse_dtype(spec.dtype):
        raise ApiError(422, f"{field(key)}: expected dtype {spec.dtype}, got {value.dtype.name}")
    if tuple(value.shape) != tuple(spec.shape):
        raise ApiError(422, f"{field(key)}: expected shape {tuple(spec.shape)}, "
                            f"got {tuple(value.shape)}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        raise ApiError(422, f"{field(key)}: contains {bad} non-finite value(s) (NaN or inf)")
    return value


def check_instruction(value: Any, meta: PolicyMetadata) -> None:
    if not isinstance(value, str):
        raise ApiError(422, f"{field(keys.INSTRUCTION)}: expected a string, "
                            f"got {type(value).__name__}")
    if meta.instruction_required and not value.strip():
        raise ApiError(422, f"{field(keys.INSTRUCTION)}: must not be empty for this policy")
    if len(value) > MAX_INSTRUCTION_CHARS:
        raise ApiError(422, f"{field(keys.INSTRUCTION)}: at most {MAX_INSTRUCTION_CHARS} "
                            f"characters, got {len(value)}")


def validate_observation(obs: Any, meta: PolicyMetadata) -> dict[str, Any]:
    """A decoded observation -> the clean dict handed to ``Policy.predict``; raises ApiError 422."""
    check_keys(obs, meta)
    clean: dict[str, Any] = {k: check_array(k, obs[k], spec) for k, spec in meta.inputs.items()}
    if keys.INSTRUCTION in obs:
        check_instruction(obs[keys.INSTRUCTION], meta)
        clean[keys.INSTRUCTION] = obs[keys.INSTRUCTION]
    return clean


def warmup_observation(meta: PolicyMetadata) -> dict[str, Any]:
    """A valid all-zeros observation, used to warm the model up before /readyz passes."""
    obs: dict[str, Any] = {k: np.zeros(s.shape, dtype=s.dtype) for k, s in meta.inputs.items()}
    obs[keys.INSTRUCTION] = "warm up"
    return obs
