"""Small recorded-robot-style episode stores for the preference tests (no simulator).

Each episode looks like what the ROS recorder writes for a real robot: proprioception, a gripper
opening trace, actions, an operator success label, and stages from the gripper-only family
(no object poses). ``obs/env_state`` is added so the tiny state-mode policies of
``tests/policies/policy_helpers.py`` can read the episodes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stare_robot import keys
from stare_robot.data.store import EpisodeStore
from stare_robot.stages import annotate_trajectory

ENV_STATE_DIM = 5


def gripper_trace(closes_at: int | None, opens_at: int | None, length: int) -> np.ndarray:
    """(T, 1) opening: open, closed from ``closes_at``, open again from ``opens_at``."""
    g = np.ones((length, 1), np.float32)
    if closes_at is not None:
        g[closes_at:] = 0.1
    if opens_at is not None:
        g[opens_at:] = 1.0
    return g


def write_episode(
    store: EpisodeStore,
    task: str,
    success: bool,
    closes_at: int | None,
    opens_at: int | None,
    length: int = 16,
    seed: int = 0,
    instruction: str | None = None,
) -> str:
    rng = np.random.default_rng(seed)
    gripper = gripper_trace(closes_at, opens_at, length)
    action = rng.uniform(-0.05, 0.05, size=(length, keys.ACTION_DIM)).astype(np.float32)
    action[:, 6] = np.where(gripper[:, 0] > 0.5, keys.GRIPPER_OPEN, keys.GRIPPER_CLOSED)
    joints = rng.normal(size=(length, 9)).astype(np.float32)
    arrays = {
        keys.OBS_STATE: np.concatenate([joints, 0.1 * joints], axis=1),
        keys.OBS_JOINT_POS: joints,
        keys.OBS_GRIPPER: gripper,
        keys.OBS_ENV_STATE: rng.normal(size=(length, ENV_STATE_DIM)).astype(np.float32),
        keys.ACTION: action,
    }
    attrs = {
        keys.ATTR_TASK: task,
        keys.ATTR_SOURCE: "real",
        keys.ATTR_SUCCESS: bool(success),
        keys.ATTR_INSTRUCTION: instruction or f"do {task}",
    }
    note = annotate_trajectory(arrays, "gripper")
    arrays[keys.STAGE] = note.stage
    with store.new_episode(attrs={**attrs, **note.store_attrs()}) as ep:
        ep.extend(arrays)
        return ep.commit()


def make_store(path: Path, episodes: list[dict]) -> Path:
    """``episodes``: kwargs of :func:`write_episode` (task, success, closes_at, opens_at, ...)."""
    store = EpisodeStore.create(path)
    for i, spec in enumerate(episodes):
        write_episode(store, **{"seed": i, **spec})
    return path
