"""PPO's actor-critic on both action heads: what it samples it scores identically, the value head's
gradients never reach the policy, and the policy gradient does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from policy_helpers import build, observation

from stare_robot.train.actor_critic import ActorCritic


@pytest.mark.parametrize("policy_type, noisy_steps", [("pi0", 1), ("pi0", None), ("pi0_tokens", None)])
def test_act_and_evaluate_agree_and_gradients_go_where_they_should(policy_type, noisy_steps):
    policy = build(policy_type, "state", seed=2).eval()
    ac = ActorCritic(policy, noise_std=0.2, noisy_steps=noisy_steps)
    observations = [observation(policy.config, seed=s) for s in range(3)]
    out = ac.act(observations, torch.Generator().manual_seed(0))
    assert out.actions.shape == (3, policy.config.chunk_size, policy.config.action_dim)
    assert out.log_probs.shape == out.values.shape == (3,)
    # a different sampler seed gives different samples (the rollout policy is stochastic)
    other = ac.act(observations, torch.Generator().manual_seed(1))
    assert not np.allclose(out.actions, other.actions)

    batch = policy.processor.collate(observations)
    logp, values, entropy = ac.evaluate(batch, torch.as_tensor(out.records))
    np.testing.assert_allclose(logp.detach().numpy(), out.log_probs, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(values.detach().numpy(), out.values, atol=1e-6)
    assert (entropy is not None) == (policy_type == "pi0_tokens")

    # the value loss moves only the value head ...
    ac.zero_grad()
    values.pow(2).sum().backward(retain_graph=True)
    assert all(p.grad is None or not p.grad.any() for p in policy.parameters())
    assert any(p.grad is not None and p.grad.any() for p in ac.value_head.parameters())
    # ... and the policy loss reaches the policy
    ac.zero_grad()
    logp.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())
