"""Log-likelihoods of sampled chunks: the flow head's noisy denoising chain and the token head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from policy_helpers import build, observation

from stare_robot.policies.pi0.likelihood_pi0 import chain_log_prob
from stare_robot.policies.protocol import SamplingSpec, sample_for_rollout

SIGMA = 0.2


@pytest.fixture(scope="module")
def flow_policy():
    return build("pi0", "state", seed=1).eval()


def test_chain_log_prob_is_the_gaussian_density_of_the_injected_noise(flow_policy):
    """Score the sampled chain: x_{k+1} - mean_k is exactly sigma * eps_k, so the log-prob must
    equal the standard-normal density of the generator's draws, whatever the network is."""
    policy = flow_policy
    obs = observation(policy.config, seed=3)
    seed = 1234
    _, chain = sample_for_rollout(policy, obs, seed, SIGMA)
    steps = policy.config.num_inference_steps
    assert chain.shape == policy.record_shape == (steps + 1, *chain.shape[1:])
    # replay the generator: x_0, then one eps per denoising step
    gen = torch.Generator().manual_seed(seed)
    shape = chain.shape[1:]
    x0 = torch.randn((1, *shape), generator=gen)
    eps = [torch.randn((1, *shape), generator=gen) for _ in range(steps)]
    np.testing.assert_allclose(chain[0], x0[0].numpy(), rtol=0, atol=0)
    dims = policy.config.action_dim
    expected = sum(
        float((-0.5 * e[..., :dims] ** 2 - math.log(SIGMA) - 0.5 * math.log(2 * math.pi)).sum())
        for e in eps
    )
    batch = policy.processor.collate([obs])
    got = chain_log_prob(policy, batch, torch.from_numpy(chain)[None], SIGMA)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, rel=1e-4, abs=1e-2)


def test_executed_chunk_is_the_chain_end_and_seeds_are_reproducible(flow_policy):
    policy = flow_policy
    obs = observation(policy.config, seed=4)
    action, chain = sample_for_rollout(policy, obs, 7, SIGMA)
    again, chain_again = sample_for_rollout(policy, obs, 7, SIGMA)
    other, _ = sample_for_rollout(policy, obs, 8, SIGMA)
    np.testing.assert_array_equal(action, again)
    np.testing.assert_array_equal(chain, chain_again)
    assert not np.allclose(action, other)
    end = torch.from_numpy(chain[-1, :, : policy.config.action_dim])
    np.testing.assert_allclose(action, policy.processor.unnormalize_action(end).numpy(), rtol=1e-5)


def test_chain_log_prob_is_batched_consistently_and_differentiable(flow_policy):
    policy = flow_policy
    observations = [observation(policy.config, seed=s) for s in (5, 6)]
    chains = torch.stack(
        [
            torch.from_numpy(sample_for_rollout(policy, o, s, SIGMA)[1])
            for s, o in enumerate(observations)
        ]
    )
    batch = policy.processor.collate(observations)
    together = chain_log_prob(policy, batch, chains, SIGMA)
    alone = torch.cat(
        [
            chain_log_prob(policy, policy.processor.collate([o]), c[None], SIGMA)
            for o, c in zip(observations, chains)
        ]
    )
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-3)
    # a chain moved off the sampler's path is less likely
    moved = chains.clone()
    moved[:, 1:] += 0.5
    assert (chain_log_prob(policy, batch, moved, SIGMA) < together).all()
    policy.zero_grad()
    together.sum().backward()
    expert_grads = [p.grad for n, p in policy.named_parameters() if ".dit." in n or "action" in n]
    assert any(g is not None and g.abs().sum() > 0 for g in expert_grads)
    policy.zero_grad()


def test_chain_of_the_wrong_shape_is_a_clear_error(flow_policy):
    policy = flow_policy
    batch = policy.processor.collate([observation(policy.config)])
    with pytest.raises(ValueError, match="num_inference_steps \\+ 1"):
        chain_log_prob(policy, batch, torch.zeros(1, 3, 4, 7), SIGMA)


def test_token_head_record_is_a_bin_grid_scored_exactly():
    policy = build("pi0_tokens", "state", seed=2).eval()
    obs = observation(policy.config, seed=1)
    action, record = sample_for_rollout(policy, obs, 11, SIGMA)
    assert (
        record.shape == policy.record_shape == (policy.config.chunk_size, policy.config.action_dim)
    )
    # every sampled value is a bin centre, and the executed chunk is its un-normalisation
    centres = policy.bin_values.numpy()
    assert np.abs(record[..., None] - centres).min(-1).max() < 1e-6
    np.testing.assert_allclose(
        action, policy.processor.unnormalize_action(torch.from_numpy(record)).numpy(), rtol=1e-5
    )
    batch = policy.processor.collate([obs])
    got = policy.log_prob(batch, torch.from_numpy(record)[None], SamplingSpec(SIGMA))
    torch.testing.assert_close(got, policy.log_prob(batch, torch.from_numpy(record)[None]))


def test_last_step_noise_chain_is_a_gaussian_around_predict(flow_policy):
    """PPO's sampler (noisy_steps=1): the chain starts at predict()'s zero noise, its mean is
    exactly predict()'s chunk, and the log-prob is one Gaussian step's density."""
    policy = flow_policy
    obs = observation(policy.config, seed=5)
    batch = policy.processor.collate([obs])
    dims = policy.config.action_dim
    spec = SamplingSpec(SIGMA, noisy_steps=1)
    with torch.no_grad():
        chain = policy.sample(batch, torch.Generator().manual_seed(0), spec).records
        normalized = chain[:, -1, :, :dims]
        assert float(chain[:, 0].abs().max()) == 0.0
        mean = policy.processor.normalize_action(policy.predict(obs))[None]
        # the sample deviates from predict() by sigma * eps in the last step only
        deviation = (normalized - mean) / SIGMA
        at_mean = chain.clone()
        at_mean[:, -1, :, :dims] = mean
        best = policy.log_prob(batch, at_mean, spec)
        got = policy.log_prob(batch, chain, spec)
    n = mean.numel()
    assert best.item() == pytest.approx(-n * (math.log(SIGMA) + 0.5 * math.log(2 * math.pi)), abs=1e-3)
    assert got.item() == pytest.approx(best.item() - 0.5 * float(deviation.pow(2).sum()), abs=1e-3)
