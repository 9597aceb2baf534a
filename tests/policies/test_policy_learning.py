"""Training and inference agree: ``predict`` returns what the training loss teaches.

Catches sign / scale mismatches between the loss and the sampler (flow direction, bin mapping).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from policy_helpers import build, observation

from stare_robot.keys import ACTION, LOSS


def test_flow_sampler_integrates_the_velocity_from_noise_to_action():
    # Training regresses v = noise - action, so integrating dx/dt = v from t=1 (x = noise = 0 by
    # default) down to t=0 must give x = -v for a constant field, whatever the step count.
    policy = build("pi0", "state")
    velocity = torch.linspace(-0.8, 0.8, policy.config.action_dim)
    with torch.no_grad():
        policy.backbone.action_out_proj.weight.zero_()
        policy.backbone.action_out_proj.bias.copy_(velocity)
    for steps in (1, 10):
        policy.config.num_inference_steps = steps
        action = policy.predict(observation(policy.config))
        constant = -velocity.expand(policy.config.chunk_size, -1)
        expected = policy.processor.unnormalize_action(constant).numpy()
        np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-6)


def _overfit(policy_type: str, steps: int, repeats: int) -> None:
    policy = build(policy_type, "state", use_stake=False)
    config = policy.config
    observations = [observation(config, seed=0), observation(config, seed=1)]
    targets = np.zeros((2, config.chunk_size, config.action_dim), np.float32)
    targets[0, :, :3] = [0.03, -0.02, 0.01]  # small end-effector deltas, opposite gripper commands
    targets[1, :, :3] = [-0.04, 0.00, 0.02]
    targets[0, :, -1], targets[1, :, -1] = 1.0, -1.0
    batch = policy.processor.collate(observations * repeats)
    chunks = torch.from_numpy(np.concatenate([targets] * repeats))
    batch[ACTION] = policy.processor.normalize_action(chunks)

    optimizer = torch.optim.AdamW(policy.parameters(), lr=2e-3)
    for _ in range(steps):
        loss = policy.training_losses(batch)[LOSS]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    scale = np.maximum(policy.processor.stats[ACTION].std, 1e-3)  # errors in units of data spread
    for obs, target in zip(observations, targets):
        error = np.abs(policy.predict(obs) - target) / scale
        assert error.max() < 0.25, (policy_type, error.max())


def test_token_head_overfits_two_observations():
    _overfit("pi0_tokens", steps=40, repeats=1)


@pytest.mark.slow
def test_flow_head_overfits_two_observations():
    _overfit("pi0", steps=300, repeats=4)
