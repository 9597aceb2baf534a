"""Log-likelihoods of sampled action chunks, for both pi0 action heads: the math behind the
training-protocol methods (``sample`` / ``score``, :mod:`stare_robot.policies.protocol`) of
:class:`~.modeling_pi0.PI0Policy` and :class:`~.modeling_pi0_tokens.PI0TokensPolicy`; training
code calls those methods, never this module.

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

import torch

from stare_robot.policies.protocol import DEFAULT_NOISE_STD, SamplingSpec

DEFAULT_CHAIN_NOISE_STD = DEFAULT_NOISE_STD  # sigma, in normalised action units (data std = 1)


def _noisy(k: int, steps: int, noisy_steps: int | None) -> bool:
    """Whether denoising step k (of ``steps``) injects noise: all of them by default, else only
    the last ``noisy_steps``."""
    return noisy_steps is None or k >= steps - noisy_steps


def _gaussian_log_density(z: torch.Tensor, noise_std: float) -> torch.Tensor:
    """log N(sigma * z; 0, sigma^2 I) summed over all but the batch dimension."""
    return (-0.5 * z.pow(2) - math.log(noise_std) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def _check_noise(noise_std: float) -> None:
    if noise_std <= 0:
        raise ValueError(f"noise_std must be > 0 for a tractable chain likelihood, got {noise_std}")


def check_chain(policy, chain: Any) -> torch.Tensor:
    """``chain`` as a float tensor on the policy's device, shape-checked: (B, N+1, chunk, max_A)."""
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
    return chain


def sample_chain(
    policy, prefix, state, generator: torch.Generator, spec: SamplingSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """(chain (B, N+1, chunk, max_A), its log-density (B,)) of the noise-injected sampler (module
    docstring) from an already computed prefix: at sampling time each noisy transition's density
    is that of the noise just injected, so the sampler scores its own chain without re-running
    the velocity field (equal to :func:`chain_log_prob_from_prefix` on the same chain and
    weights). ``chain[:, -1, :, :action_dim]`` is the normalised action chunk."""
    noise_std, noisy_steps = spec.noise_std, spec.noisy_steps
    scored = slice(0, spec.scored_steps)  # None: the whole chunk
    dims = policy.config.action_dim
    _check_noise(noise_std)
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


def chain_log_prob_from_prefix(
    policy, prefix, state, chain: torch.Tensor, spec: SamplingSpec
) -> torch.Tensor:
    """Sum of the noisy transitions' Gaussian log-densities. A noiseless transition is recomputed
    from the previous state (with gradients) instead of read from the chain, so with
    ``noisy_steps=1`` this is log N(a; mu_theta(x_0, o), sigma^2 I): the density of the chunk given
    the initial noise x_0, the policy's deterministic ODE map plus one Gaussian step; with
    ``scored_steps`` only that Gaussian's first chunk steps (the flow head's ``check_sampling``)."""
    noise_std, noisy_steps = spec.noise_std, spec.noisy_steps
    _check_noise(noise_std)
    steps = policy.config.num_inference_steps
    dims = policy.config.action_dim
    scored = slice(0, spec.scored_steps)  # None: the whole chunk
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


def chain_log_prob(
    policy, batch: Mapping[str, Any], chain: torch.Tensor, noise_std: float
) -> torch.Tensor:
    """Differentiable log pi_theta(chain | obs) of chains sampled with noise at every step: batch
    (B obs, collated), chain (B, N+1, chunk, max_action_dim) -> (B,) (the flow head's
    ``log_prob``)."""
    return policy.log_prob(batch, chain, SamplingSpec(noise_std=noise_std))
