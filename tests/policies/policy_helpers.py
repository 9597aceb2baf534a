"""Builders shared by the policy tests: tiny configs, statistics, observations and batches."""

from __future__ import annotations

import numpy as np
import torch

from stare_robot.keys import (
    ACTION,
    ACTION_IS_PAD,
    INSTRUCTION,
    KEYFRAME_TARGET,
    OBS_ENV_STATE,
    OBS_STATE,
    STAGE_LABEL,
    obs_rgb,
)
from stare_robot.policies import POLICY_TYPES, make_config, make_policy
from stare_robot.policies.normalize import NormalizationStats

POLICY_TYPE_NAMES = sorted(POLICY_TYPES)
OBS_MODES = ("rgb", "state")
ENV_STATE_DIM = 5
INSTRUCTIONS = ("push the cube to the goal", "pick up the red cube")




def config_for(policy_type: str, obs_mode: str, **overrides):
    env_state_dim = ENV_STATE_DIM if obs_mode == "state" else 0
    return make_config(policy_type, obs_mode=obs_mode, env_state_dim=env_state_dim, **overrides)


def stats_for(config, seed: int = 0, action_dim: int | None = None) -> NormalizationStats:
    """Statistics of random data with the config's widths (``action_dim`` overrides the action's)."""
    rng = np.random.default_rng(seed)
    action = rng.uniform(-0.05, 0.05, size=(200, action_dim or config.action_dim))
    action[:, -1] = rng.choice([-1.0, 1.0], size=200)  # gripper close/open
    arrays = {OBS_STATE: rng.normal(0.3, 2.0, size=(200, config.state_dim)), ACTION: action}
    if config.env_state_dim:
        arrays[OBS_ENV_STATE] = rng.normal(size=(200, config.env_state_dim))
    return NormalizationStats.from_arrays(arrays)


def build(policy_type: str, obs_mode: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = config_for(policy_type, obs_mode, **overrides)
    return make_policy(config, stats_for(config))


def observation(config, seed: int = 0) -> dict:
    """One raw observation with every input ``config`` needs."""
    rng = np.random.default_rng(seed)
    obs = {
        OBS_STATE: rng.normal(0.3, 2.0, size=config.state_dim).astype(np.float32),
        INSTRUCTION: INSTRUCTIONS[seed % 2],
    }
    if config.obs_mode == "rgb":
        for cam in config.cameras:
            shape = (config.image_size, config.image_size, 3)
            obs[obs_rgb(cam)] = rng.integers(0, 256, size=shape, dtype=np.uint8)
    if config.env_state_dim:
        obs[OBS_ENV_STATE] = rng.normal(size=config.env_state_dim).astype(np.float32)
    return obs


def training_batch(policy, batch_size: int = 4, seed: int = 0) -> dict:
    """A training batch: collated observations plus normalised actions and StaKe labels."""
    config = policy.config
    batch = policy.processor.collate([observation(config, seed + i) for i in range(batch_size)])
    gen = torch.Generator().manual_seed(seed)
    raw = torch.rand(batch_size, config.chunk_size, config.action_dim, generator=gen) * 0.1 - 0.05
    raw[..., -1] = torch.where(
        torch.rand(batch_size, config.chunk_size, generator=gen) > 0.5, 1.0, -1.0
    )
    batch[ACTION] = policy.processor.normalize_action(raw)
    batch[ACTION_IS_PAD] = torch.zeros(batch_size, config.chunk_size, dtype=torch.bool)
    batch[ACTION_IS_PAD][0, -1] = True
    batch[STAGE_LABEL] = (torch.arange(batch_size) % 2).float()
    batch[KEYFRAME_TARGET] = torch.randn(batch_size, config.keyframe_dim, generator=gen)
    return batch
