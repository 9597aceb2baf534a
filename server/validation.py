"""The server's side of :mod:`stare_robot.validation`: the same rules, refusals as HTTP 422.

Every refusal names the observation field, what was expected and what arrived, e.g.
``observation['obs/state']: got shape (7,), expected shape (8,)`` — word for word what an
in-process ``Policy.predict`` and :class:`~stare_robot.client.PolicyClient` say.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stare_robot.server.errors import ApiError

from stare_robot import keys, validation
from stare_robot.policies.base import ObservationError, PolicyMetadata

# re-exported for the codec
field = validation.field
describe = validation.describe


def validate_observation(obs: Any, meta: PolicyMetadata) -> dict[str, Any]:
    """A decoded observation -> the clean dict handed to ``Policy.predict``; raises ApiError 422."""
    try:
        return validation.validate_observation(obs, meta)
    except ObservationError as e:
        raise ApiError(422, str(e)) from None


def warmup_observation(meta: PolicyMetadata) -> dict[str, Any]:
    """A valid all-zeros observation, used to warm the model up before /readyz passes."""
    obs: dict[str, Any] = {k: np.zeros(s.shape, dtype=s.dtype) for k, s in meta.inputs.items()}
    obs[keys.INSTRUCTION] = "warm up"
    return obs
