"""The one-method policy interface the server, the evaluator and the ROS nodes rely on.

Inference callers only ever use :meth:`Policy.predict` (or its batched form) and
:attr:`Policy.metadata`. Training code additionally uses the training protocol
(:class:`stare_robot.policies.protocol.TrainablePolicy`: sampling with records, ``log_prob`` of
records, value features, ``training_losses``); that is not part of what a deployed policy must
offer.

An observation is a flat dict keyed by :mod:`stare_robot.keys` names, one step, no batch axis::

    {
        "obs/base_camera/rgb": uint8 (H, W, 3),     # one entry per camera in metadata.cameras
        "obs/state": float32 (S,),                  # proprioception, S = metadata.state_dim
        "obs/env_state": float32 (E,),              # only for state-mode policies
        "instruction": "push the cube to the goal", # str
    }

and ``predict`` returns a float32 action chunk of shape ``(metadata.chunk_size, metadata.action_dim)``
in the robot's action space (un-normalised, ready to execute).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

Observation = Mapping[str, Any]


@dataclass(frozen=True)
class ArraySpec:
    """Expected shape and dtype of one observation array."""

    shape: tuple[int, ...]
    dtype: str  # numpy dtype name, e.g. "uint8", "float32"


@dataclass(frozen=True)
class PolicyMetadata:
    """What a client must know to talk to a policy; served verbatim by ``GET /v1/metadata``."""

    name: str
    version: str
    action_space: str  # e.g. "pd_ee_delta_pose"
    action_dim: int
    chunk_size: int
    control_rate_hz: float
    # every array the policy reads from an observation, by key (cameras, state, env state)
    inputs: dict[str, ArraySpec]
    instruction_required: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. normalisation summary, task

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = {k: {"shape": list(v.shape), "dtype": v.dtype} for k, v in self.inputs.items()}
        return d


class Policy(abc.ABC):
    """A policy that maps one observation to one action chunk."""

    @property
    @abc.abstractmethod
    def metadata(self) -> PolicyMetadata: ...

    @abc.abstractmethod
    def predict(self, obs: Observation) -> np.ndarray:
        """One observation -> float32 action chunk ``(chunk_size, action_dim)``. Deterministic."""

    def predict_batch(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        """Several observations at once. Must equal ``[predict(o) for o in observations]`` exactly;
        subclasses override it only to make it faster, never to change results."""
        return [self.predict(o) for o in observations]


class ObservationError(ValueError):
    """An observation (or training batch) lacks an input the policy needs, or has the wrong shape."""


def check_observation(obs: Observation, metadata: PolicyMetadata) -> None:
    """Raise :class:`ObservationError` naming what is wrong with ``obs`` (missing or misshapen
    input, wrong dtype, NaN/inf, bad instruction). The rules are :mod:`stare_robot.validation`'s,
    shared with the server and the client; extra keys are allowed (and ignored)."""
    from stare_robot.validation import validate_observation  # it imports this module

    validate_observation(obs, metadata)
