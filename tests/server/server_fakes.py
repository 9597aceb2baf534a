"""Test policies for the server (test fakes live only in tests/).

``MixingPolicy`` is deterministic and its every output depends on every input (each image pixel,
each state entry, the instruction), so a server that drops, reorders, re-scales or mixes up inputs
between requests returns different actions.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Sequence

import numpy as np

from stare_robot import keys
from stare_robot.policies.base import ArraySpec, Observation, Policy, PolicyMetadata

CAMERA = keys.obs_rgb(keys.DEFAULT_CAMERA)
IMAGE_SHAPE = (32, 24, 3)  # not square, so a transposed image is caught
STATE_DIM = 8
CHUNK = 4


def make_metadata(name: str = "mixing-test-policy", image_shape=IMAGE_SHAPE,
                  state_dim: int = STATE_DIM) -> PolicyMetadata:
    return PolicyMetadata(
        name=name, version="1.0", action_space=keys.ACTION_SPACE_EE_DELTA,
        action_dim=keys.ACTION_DIM, chunk_size=CHUNK, control_rate_hz=10.0,
        inputs={CAMERA: ArraySpec(tuple(image_shape), "uint8"),
                keys.OBS_STATE: ArraySpec((state_dim,), "float32")},
        instruction_required=True,
        extra={"normalization": {"state": "mean_std", "action": "min_max"}},
    )


def make_observation(rng: np.random.Generator, meta: PolicyMetadata | None = None,
                     instruction: str = "push the cube to the goal") -> dict:
    meta = meta or make_metadata()
    return {
        CAMERA: rng.integers(0, 256, size=meta.inputs[CAMERA].shape, dtype=np.uint8),
        keys.OBS_STATE: rng.standard_normal(meta.inputs[keys.OBS_STATE].shape).astype(np.float32),
        keys.INSTRUCTION: instruction,
    }


class MixingPolicy(Policy):
    """actions = tanh(W_s @ state + <W_img, image> + crc(instruction)) in float32, per chunk step."""

    def __init__(self, meta: PolicyMetadata | None = None, seed: int = 0) -> None:
        self._meta = meta or make_metadata()
        rng = np.random.default_rng(seed)
        out = self._meta.chunk_size * self._meta.action_dim
        self.w_img = rng.standard_normal(self._meta.inputs[CAMERA].shape + (out,)) / 1e4
        self.w_state = rng.standard_normal((self._meta.inputs[keys.OBS_STATE].shape[0], out))
        self.batch_sizes: list[int] = []  # sizes of predict_batch calls, to see batching happen
        self.calls = 0
        self._lock = threading.Lock()

    @property
    def metadata(self) -> PolicyMetadata:
        return self._meta

    def predict(self, obs: Observation) -> np.ndarray:
        with self._lock:
            self.calls += 1
        img = np.tensordot(obs[CAMERA].astype(np.float64), self.w_img, axes=3)
        state = obs[keys.OBS_STATE].astype(np.float64) @ self.w_state
        text = zlib.crc32(obs[keys.INSTRUCTION].encode()) / 2**32
        flat = np.tanh(img + state + text)
        return flat.reshape(self._meta.chunk_size, self._meta.action_dim).astype(np.float32)

    def predict_batch(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        with self._lock:
            self.batch_sizes.append(len(observations))
        return [self.predict(o) for o in observations]


class SlowPolicy(MixingPolicy):
    """A simulated model: each forward pass (one observation or a whole batch) takes ``delay_s``."""

    def __init__(self, delay_s: float = 0.02, **kw) -> None:
        super().__init__(**kw)
        self.delay_s = delay_s

    def predict(self, obs: Observation) -> np.ndarray:
        time.sleep(self.delay_s)
        return super().predict(obs)

    def predict_batch(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        time.sleep(self.delay_s)
        with self._lock:
            self.batch_sizes.append(len(observations))
        return [MixingPolicy.predict(self, o) for o in observations]


FAIL_INSTRUCTION = "please raise"
NAN_INSTRUCTION = "please return nan"


class FaultyPolicy(MixingPolicy):
    """Fails on demand: raises for FAIL_INSTRUCTION, returns NaN actions for NAN_INSTRUCTION."""

    def predict(self, obs: Observation) -> np.ndarray:
        if obs[keys.INSTRUCTION] == FAIL_INSTRUCTION:
            raise RuntimeError("simulated CUDA out of memory")
        out = super().predict(obs)
        if obs[keys.INSTRUCTION] == NAN_INSTRUCTION:
            out[0, 0] = np.nan
        return out
