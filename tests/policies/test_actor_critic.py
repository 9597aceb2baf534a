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


@pytest.mark.parametrize("policy_type, noisy_steps", [("pi0", 1), ("pi0_tokens", None)])
def test_scored_steps_cover_exactly_the_executed_prefix(policy_type, noisy_steps):
    """PPO's likelihood of a decision is that of the chunk steps it executes: changing a recorded
    sample's later (never executed) steps leaves it unchanged, changing an executed step does not,
    and act() and evaluate() agree on it (ratio 1 before an update)."""
    policy = build(policy_type, "state", seed=3, chunk_size=4).eval()
    observations = [observation(policy.config, seed=s) for s in range(2)]
    prefix_ac = ActorCritic(policy, noise_std=0.2, noisy_steps=noisy_steps, scored_steps=2)
    whole_ac = ActorCritic(policy, noise_std=0.2, noisy_steps=noisy_steps)
    out = prefix_ac.act(observations, torch.Generator().manual_seed(0))
    batch = policy.processor.collate(observations)
    records = torch.as_tensor(out.records)
    with torch.no_grad():
        logp, _, entropy = prefix_ac.evaluate(batch, records)
        whole, _, whole_entropy = whole_ac.evaluate(batch, records)
    np.testing.assert_allclose(logp.numpy(), out.log_probs, rtol=1e-5, atol=1e-3)
    assert not torch.allclose(logp, whole)
    # the last chunk step of the sample is never executed: editing it changes nothing ...
    later, executed = records.clone(), records.clone()
    if policy_type == "pi0":
        later[:, -1, 3, :] += 0.5
        executed[:, -1, 0, :] += 0.5
    else:  # token records are normalised chunks; move a value to another bin
        later[:, 3, :] = -later[:, 3, :] + 0.5
        executed[:, 0, :] = -executed[:, 0, :] + 0.5
    with torch.no_grad():
        torch.testing.assert_close(prefix_ac.evaluate(batch, later)[0], logp)
        assert not torch.allclose(prefix_ac.evaluate(batch, executed)[0], logp)
        assert not torch.allclose(whole_ac.evaluate(batch, later)[0], whole)
    if entropy is not None:
        assert (entropy < whole_entropy).all()


def test_prefix_scoring_is_refused_where_it_would_not_be_exact():
    policy = build("pi0", "state", seed=3, chunk_size=4)
    with pytest.raises(ValueError, match="noisy_steps=1"):
        ActorCritic(policy, noise_std=0.2, noisy_steps=None, scored_steps=2)
    with pytest.raises(ValueError, match="1..chunk_size=4"):
        ActorCritic(policy, noise_std=0.2, noisy_steps=1, scored_steps=5)


def _decisions(ac: ActorCritic, n: int) -> dict:
    """An iteration's worth of decisions on synthetic observations, as flatten_decisions gives."""
    observations = [observation(ac.policy.config, seed=s) for s in range(n)]
    out = ac.act(observations, torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    return {"obs": observations, "records": out.records, "log_probs": out.log_probs,
            "values": out.values, "advantages": rng.normal(size=n), "returns": rng.normal(size=n)}


@pytest.mark.parametrize("target_kl, updates", [(1e9, 2 * 4), (1e-12, 1)])
def test_ppo_update_stops_at_the_first_minibatch_over_the_kl_limit(target_kl, updates):
    """The KL check runs before every minibatch step: with a tiny target the first step (ratio 1,
    KL 0) is taken and the second minibatch, already off-policy, stops the iteration; with a huge
    target every minibatch of every epoch runs."""
    from stare_robot.train.ppo import PPOArgs, ppo_update

    policy = build("pi0", "state", seed=4, chunk_size=4)
    ac = ActorCritic(policy, noise_std=0.1, noisy_steps=1, scored_steps=2)
    data = _decisions(ac, 16)
    args = PPOArgs(ckpt=".", task="PushCube-v1", out=".", epochs=2, minibatch=4, lr=1e-3,
                   target_kl=target_kl)
    optimizer = torch.optim.Adam(ac.parameters(), lr=args.lr)
    stats = ppo_update(ac, optimizer, data, args, np.random.default_rng(0), policy_on=True)
    assert stats["updates"] == updates
    assert stats["kl_stopped"] == (target_kl < 1)
    # only a policy update can be stopped by its KL: the value-only warm-up always runs in full
    warm = ppo_update(ac, optimizer, data, args, np.random.default_rng(0), policy_on=False)
    assert warm["updates"] == 2 * 4 and not warm["kl_stopped"]


@pytest.mark.parametrize("policy_type", ["pi0", "pi0_tokens"])
def test_one_prefix_pass_serves_likelihood_value_and_entropy(policy_type):
    """act() and evaluate() run the VLM once per batch: the value head reads the same pass."""
    policy = build(policy_type, "state", seed=2).eval()
    ac = ActorCritic(policy, noise_std=0.2, noisy_steps=1)
    observations = [observation(policy.config, seed=s) for s in range(2)]
    calls = []
    policy.backbone.model.vlm.register_forward_hook(lambda *_: calls.append(1))
    out = ac.act(observations, torch.Generator().manual_seed(0))
    assert len(calls) == 1
    ac.evaluate(policy.processor.collate(observations), torch.as_tensor(out.records))
    assert len(calls) == 2
