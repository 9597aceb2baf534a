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
    if noise_std <= 0:
        raise ValueError(f"noise_std must be > 0 for a tractable chain likelihood, got {noise_std}")
    bcfg = policy.backbone.config
    steps = policy.config.num_inference_steps
    with torch.no_grad():
        prefix, state, inputs = _prefix_and_state(policy, batch)
        shape = (inputs.input_ids.shape[0], bcfg.chunk_size, bcfg.max_action_dim)
        x = torch.randn(shape, generator=generator, device=policy.device)
        chain = [x]
        for k in range(steps):
            velocity = policy.denoise_velocity(prefix, state, x, 1.0 - k / steps)
            eps = torch.randn(shape, generator=generator, device=policy.device)
            x = x - velocity / steps + noise_std * eps
            chain.append(x)
    return torch.stack(chain, dim=1)


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
    dims = policy.config.action_dim
    total = chain.new_zeros(chain.shape[0])
    for k in range(steps):
        x = chain[:, k]
        mean = x - policy.denoise_velocity(prefix, state, x, 1.0 - k / steps) / steps
        z = ((chain[:, k + 1] - mean) / noise_std)[..., :dims]
        total = total + (-0.5 * z.pow(2) - math.log(noise_std) - 0.5 * math.log(2 * math.pi)).sum(
            (1, 2)
        )
    return total


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
        if is_token_policy(policy):
            with torch.no_grad():
                prefix, _, inputs = _prefix_and_state(policy, batch)
                normalized = policy._sample_normalized(prefix, inputs, generator)
            record = normalized[0]
        else:
            record = sample_chain(policy, batch, generator, noise_std)[0]
            normalized = record[None, -1, :, : policy.config.action_dim]
        action = policy.processor.unnormalize_action(normalized)[0]
    finally:
        policy.train(was_training)
    return action.cpu().numpy().astype(np.float32), record.cpu().numpy().astype(np.float32)


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
