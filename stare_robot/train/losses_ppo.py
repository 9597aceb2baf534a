"""PPO's arithmetic: chunk returns, GAE, advantage normalisation, the clipped objective, the
value loss and the KL estimate. Pure functions over arrays, tested against hand computation.

A PPO "action" here is one policy query: the chunk it sampled, of which the first ``n_t`` actions
were executed (``execute_steps``, fewer at the end of an episode). Decision ``t``'s reward is the
discounted sum of its executed steps' rewards, and the next decision is ``n_t`` env steps later:

    R_t = sum_{i < n_t} gamma^i r_{t,i},        g_t = gamma^{n_t}

GAE over decisions (with g_t in place of gamma, so one-step decisions give textbook GAE):

    delta_t = R_t + g_t * V_next_t - V_t
    A_t     = delta_t + g_t * lam * (1 - end_t) * A_{t+1},          returns_t = A_t + V_t

``V_next_t`` is the value of the observation after decision t: V(o_{t+1}) inside an episode, the
value of the last observation when the episode was cut by the time limit (bootstrap), and 0 when
it ended by success (terminal). ``end_t`` cuts the recursion at every episode end either way.
"""

from __future__ import annotations

import numpy as np
import torch


def chunk_return(step_rewards: np.ndarray, gamma: float) -> tuple[float, float]:
    """(n,) rewards of one decision's executed steps -> (R_t, g_t) as in the module docstring."""
    r = np.asarray(step_rewards, dtype=np.float64).reshape(-1)
    return float(np.sum(r * gamma ** np.arange(r.shape[0]))), float(gamma ** r.shape[0])


def gae(
    rewards: np.ndarray,
    discounts: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    ends: np.ndarray,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over one environment's decisions in time order.

    All inputs (T,): ``rewards`` R_t, ``discounts`` g_t, ``values`` V_t, ``next_values``
    V_next_t (0 after a terminal end), ``ends`` episode ended after t. Returns (advantages,
    returns), both (T,). The last decision must end an episode or carry a bootstrap V_next.
    """
    rewards, discounts, values, next_values = (
        np.asarray(x, dtype=np.float64) for x in (rewards, discounts, values, next_values)
    )
    ends = np.asarray(ends, dtype=bool)
    advantages = np.zeros_like(rewards)
    running = 0.0
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + discounts[t] * next_values[t] - values[t]
        running = delta + discounts[t] * lam * (0.0 if ends[t] else 1.0) * running
        advantages[t] = running
    return advantages, advantages + values


def normalize_advantages(advantages: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit standard deviation (a single advantage is only centred)."""
    centred = advantages - advantages.mean()
    if advantages.numel() < 2:
        return centred
    return centred / (advantages.std() + eps)


def clipped_policy_loss(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, to minimise: -mean(min(rho A, clip(rho, 1-eps, 1+eps) A)).

    All (B,). Also returns monitoring values (no gradient): ``approx_kl`` (the k3 estimator
    mean(rho - 1 - log rho) of KL(old || new)), ``clip_fraction`` and ``ratio_mean``."""
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    loss = -torch.minimum(unclipped, clipped).mean()
    with torch.no_grad():
        stats = {
            "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
            "clip_fraction": ((ratio - 1.0).abs() > clip).float().mean(),
            "ratio_mean": ratio.mean(),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """0.5 * mean squared error to the GAE returns; with ``clip``, PPO's pessimistic clipped
    variant (the larger of the plain and the clipped-to-old-value errors)."""
    error = (values - returns).pow(2)
    if clip is not None and old_values is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        error = torch.maximum(error, (clipped - returns).pow(2))
    return 0.5 * error.mean()
