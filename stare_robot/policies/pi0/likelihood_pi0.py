"""Log-likelihoods of sampled action chunks, for both pi0 action heads (used by TPO / PPO).

**Token head** (``pi0_tokens``): exact. The sampled chunk is a grid of bins; its log-probability
is the policy's own factorised ``log_prob`` (sum over chunk steps and action dims).

**Flow head** (``pi0``): pi0 generates a chunk by integrating a learned velocity field from noise
(t = 1) to actions (t = 0) in N Euler steps. That ODE map has no tractable density of the final
chunk. As in pi_RL (Flow-Noise / Flow-SDE for pi0-family models) we make the sampler itself
stochastic and score the whole chain instead of the chunk:

    x_0 ~ N(0, I)                                      (B, chunk, max_action_dim)
    x_{k+1} = x_k - v_theta(x_k, t_k) / N + sigma * eps_k,   t_k = 1 - k / N,  eps_k ~ N(0, I)
    action chunk = x_N[..., :action_dim]  (normalised; the processor un-normalises it)

    log pi_theta(chain | o) = sum_{k<N} log N(x_{k+1}; x_k - v_theta(x_k, t_k) / N, sigma^2 I)

summed over the chunk steps and the real action dimensions. ``x_0``'s density does not depend
on theta and is left out (it cancels in every ratio pi_theta / pi_ref).

PPO's variant (``noisy_steps=1``): start from predict()'s zero noise and inject noise only in the
last denoising step. The other transitions are deterministic, so they are recomputed (with
gradients) rather than scored, and the log-density is that of one Gaussian step,
log N(a; mu_theta(o), sigma^2 I), whose mean mu_theta(o) is exactly the deterministic chunk that
predict() returns: the sampling policy PPO improves is a Gaussian around the deployed policy (with
noise at every step from random x_0, the samples succeed far less often than predict()).

What it is: the exact log-density of the *denoising chain* that the noise-injected sampler
produced, differentiable in theta; ratios pi_theta(chain) / pi_ref(chain) are proper importance
ratios for that stochastic policy, which is what preference (TPO) and PPO objectives need.
What it is not: the marginal likelihood of the executed action chunk under the deterministic ODE
policy (``predict``), nor under the noisy sampler (that would integrate over all chains). The
rollout policy must therefore be this noisy sampler (``sigma`` > 0), and collection has to record
the chain (:data:`stare_robot.keys.POLICY_CHAIN`), not just the executed actions: the chain cannot
be recovered from the chunk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from stare_robot.policies.base import Observation, check_observation

DEFAULT_CHAIN_NOISE_STD = 0.1  # sigma, in normalised action units (data std = 1)


def is_token_policy(policy: Any) -> bool:
    from stare_robot.policies.pi0.modeling_pi0_tokens import PI0TokensPolicy

    return isinstance(policy, PI0TokensPolicy)


def _prefix_and_state(policy, batch: Mapping[str, Any]):
    inputs = policy.processor.model_inputs(batch, policy.device)
    return policy._run_prefix(inputs), policy._padded_state(inputs), inputs


def sample_chain(
    policy, batch: Mapping[str, Any], generator: torch.Generator, noise_std: float
) -> torch.Tensor:
    """Run the noise-injected sampler (module docstring) on a collated batch, without gradients.

    Returns the chain (B, N + 1, chunk, max_action_dim); ``chain[:, -1, :, :action_dim]`` is the
    normalised action chunk."""
    with torch.no_grad():
        prefix, state, _ = _prefix_and_state(policy, batch)
        return _chain_from_prefix(policy, prefix, state, generator, noise_std)


def _noisy(k: int, steps: int, noisy_steps: int | None) -> bool:
    """Whether denoising step k (of ``steps``) injects noise: all of them by default, else only
    the last ``noisy_steps``."""
    return noisy_steps is None or k >= steps - noisy_steps


def _chain_from_prefix(
    policy, prefix, state, generator: torch.Generator, noise_std: float, noisy_steps: int | None = None
):
    return _sample_chain(policy, prefix, state, generator, noise_std, noisy_steps)[0]


def _gaussian_log_density(z: torch.Tensor, noise_std: float) -> torch.Tensor:
    """log N(sigma * z; 0, sigma^2 I) summed over all but the batch dimension."""
    return (-0.5 * z.pow(2) - math.log(noise_std) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def _sample_chain(
    policy, prefix, state, generator: torch.Generator, noise_std: float,
    noisy_steps: int | None = None, scored_steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(chain, its log-density): at sampling time each noisy transition's density is that of the
    noise just injected, so the sampler scores its own chain without re-running the velocity
    field (equal to :func:`_chain_log_prob_from_prefix` on the same chain and weights)."""
    check_scored_steps(policy, noisy_steps, scored_steps)
    scored = slice(0, scored_steps)  # None: the whole chunk
    dims = policy.config.action_dim
    if noise_std <= 0:
        raise ValueError(f"noise_std must be > 0 for a tractable chain likelihood, got {noise_std}")
    bcfg = policy.backbone.config
    steps = policy.config.num_inference_steps
    shape = (state.shape[0], bcfg.chunk_size, bcfg.max_action_dim)
    if noisy_steps is None:
        x = torch.randn(shape, generator=generator, device=policy.device)
    else:  # start where the deterministic predict() starts: its ODE path is the chain's mean
        x = torch.zeros(shape, device=policy.device)
    chain, log_prob = [x], x.new_zeros(shape[0])
    for k in range(steps):
        velocity = policy.denoise_velocity(prefix, state, x, 1.0 - k / steps)
        x = x - velocity / steps
        if _noisy(k, steps, noisy_steps):
            z = torch.randn(shape, generator=generator, device=policy.device)
            x = x + noise_std * z
            log_prob = log_prob + _gaussian_log_density(z[:, scored, :dims], noise_std)
        chain.append(x)
    return torch.stack(chain, dim=1), log_prob


def chain_log_prob(
    policy, batch: Mapping[str, Any], chain: torch.Tensor, noise_std: float
) -> torch.Tensor:
    """Differentiable log pi_theta(chain | obs): batch (B obs, collated), chain (B, N+1, chunk,
    max_action_dim) -> (B,). See the module docstring for the formula."""
    bcfg = policy.backbone.config
    steps = policy.config.num_inference_steps
    chain = torch.as_tensor(chain, device=policy.device).float()
    want = (steps + 1, bcfg.chunk_size, bcfg.max_action_dim)
    if chain.ndim != 4 or tuple(chain.shape[1:]) != want:
        raise ValueError(
            f"chain has shape {tuple(chain.shape)}, expected (B, num_inference_steps + 1, "
            f"chunk_size, max_action_dim) = (B, {', '.join(map(str, want))}); was it recorded "
            "by a policy with other settings?"
        )
    if noise_std <= 0:
        raise ValueError(f"noise_std must be > 0, got {noise_std}")
    prefix, state, _ = _prefix_and_state(policy, batch)
    return _chain_log_prob_from_prefix(policy, prefix, state, chain, noise_std)


def prefix_scoring_is_exact(policy, noisy_steps: int | None) -> bool:
    """Whether the likelihood of the chunk's first steps alone is their exact marginal: so where
    the chunk's steps are independent given the observation, i.e. the token head, and the flow
    head with noise in the last denoising step only (a prefix of that Gaussian is Gaussian)."""
    return is_token_policy(policy) or noisy_steps == 1


def check_scored_steps(policy, noisy_steps: int | None, scored_steps: int | None) -> None:
    """Scoring only the first ``scored_steps`` chunk steps: in range, and exact
    (:func:`prefix_scoring_is_exact`)."""
    if scored_steps is None:
        return
    chunk = policy.config.chunk_size
    if not 1 <= scored_steps <= chunk:
        raise ValueError(f"scored_steps must be in 1..chunk_size={chunk}, got {scored_steps}")
    if not prefix_scoring_is_exact(policy, noisy_steps):
        raise ValueError(
            "scoring a prefix of the chunk needs noisy_steps=1 for the flow head: noise in earlier "
            f"denoising steps mixes all chunk steps (got noisy_steps={noisy_steps})"
        )


def _chain_log_prob_from_prefix(
    policy, prefix, state, chain: torch.Tensor, noise_std: float, noisy_steps: int | None = None,
    scored_steps: int | None = None,
):
    """Sum of the noisy transitions' Gaussian log-densities. A noiseless transition is recomputed
    from the previous state (with gradients) instead of read from the chain, so with
    ``noisy_steps=1`` this is log N(a; mu_theta(x_0, o), sigma^2 I): the density of the chunk given
    the initial noise x_0, the policy's deterministic ODE map plus one Gaussian step; with
    ``scored_steps`` only that Gaussian's first chunk steps (:func:`check_scored_steps`)."""
    check_scored_steps(policy, noisy_steps, scored_steps)
    steps = policy.config.num_inference_steps
    dims = policy.config.action_dim
    scored = slice(0, scored_steps)  # None: the whole chunk
    total = chain.new_zeros(chain.shape[0])
    x = chain[:, 0]
    for k in range(steps):
        mean = x - policy.denoise_velocity(prefix, state, x, 1.0 - k / steps) / steps
        if not _noisy(k, steps, noisy_steps):
            x = mean
            continue
        z = ((chain[:, k + 1] - mean) / noise_std)[:, scored, :dims]
        total = total + _gaussian_log_density(z, noise_std)
        x = chain[:, k + 1]
    return total


def sample_records(
    policy, prefix, inputs, generator: torch.Generator, noise_std: float,
    noisy_steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample a batch of chunks from an already computed prefix (no gradients).

    Returns (records, normalised chunks (B, chunk, A)): a record is the sampled normalised chunk
    (chunk, A) for the token head, the chain (N+1, chunk, max_A) for the flow head."""
    records, normalized, _ = sample_scored_records(
        policy, prefix, inputs, generator, noise_std, noisy_steps
    )
    return records, normalized


def sample_scored_records(
    policy, prefix, inputs, generator: torch.Generator, noise_std: float,
    noisy_steps: int | None = None, scored_steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`sample_records` plus the records' (B,) log-likelihood, as :func:`records_log_prob`
    gives it, at the cost of the sampling alone (what PPO's rollouts need)."""
    with torch.no_grad():
        if is_token_policy(policy):
            normalized = policy._sample_normalized(prefix, inputs, generator)
            log_prob = records_log_prob(
                policy, prefix, inputs, normalized, noise_std, noisy_steps, scored_steps
            )
            return normalized, normalized, log_prob
        chain, log_prob = _sample_chain(
            policy, prefix, policy._padded_state(inputs), generator, noise_std, noisy_steps,
            scored_steps,
        )
        return chain, chain[:, -1, :, : policy.config.action_dim], log_prob


def records_log_prob(
    policy, prefix, inputs, records: torch.Tensor, noise_std: float, noisy_steps: int | None = None,
    scored_steps: int | None = None,
) -> torch.Tensor:
    """(B,) log-likelihood of ``records`` from an already computed prefix (differentiable when the
    prefix is): what PPO uses so that one prefix pass serves the likelihood and the value head.
    ``noisy_steps`` must be what sampled them (None: noise at every step). ``scored_steps``: the
    likelihood of the chunk's first N steps only, the ones a rollout executes (PPO's action);
    the steps it never executes would add noise to every ratio and no signal."""
    records = torch.as_tensor(records, device=policy.device).float()
    if is_token_policy(policy):
        check_scored_steps(policy, noisy_steps, scored_steps)
        return policy.step_log_probs(policy._logits(prefix), records)[:, :scored_steps].sum(-1)
    return _chain_log_prob_from_prefix(
        policy, prefix, policy._padded_state(inputs), records, noise_std, noisy_steps, scored_steps
    )


def sample_for_rollout(
    policy, obs: Observation, seed: int, noise_std: float = DEFAULT_CHAIN_NOISE_STD
) -> tuple[np.ndarray, np.ndarray]:
    """Sample one chunk for a rollout and what its log-likelihood needs.

    Returns (action chunk (chunk, A) float32 in robot units, record): the record is the
    normalised sampled chunk (chunk, A) for the token head, the chain (N+1, chunk, max_A) for the
    flow head; :func:`record_log_prob` scores it."""
    check_observation(obs, policy.metadata)
    batch = policy.processor.collate([obs])
    generator = torch.Generator(device=policy.device).manual_seed(int(seed))
    was_training = policy.training
    policy.eval()
    try:
        with torch.no_grad():
            prefix, _, inputs = _prefix_and_state(policy, batch)
            records, normalized = sample_records(policy, prefix, inputs, generator, noise_std)
        action = policy.processor.unnormalize_action(normalized)[0]
    finally:
        policy.train(was_training)
    return action.cpu().numpy().astype(np.float32), records[0].cpu().numpy().astype(np.float32)


def record_log_prob(
    policy, batch: Mapping[str, Any], records: torch.Tensor, noise_std: float
) -> torch.Tensor:
    """(B,) differentiable log-likelihood of recorded samples (see :func:`sample_for_rollout`)."""
    if is_token_policy(policy):
        return policy.log_prob(batch, records)
    return chain_log_prob(policy, batch, records, noise_std)


def record_shape(policy) -> tuple[int, ...]:
    """Per-sample shape of a record for ``policy`` (what collection stores per step)."""
    if is_token_policy(policy):
        return (policy.config.chunk_size, policy.config.action_dim)
    bcfg = policy.backbone.config
    return (policy.config.num_inference_steps + 1, bcfg.chunk_size, bcfg.max_action_dim)
