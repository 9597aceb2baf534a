"""Staged potentials and potential-based reward shaping.

The potential of a step in stage k is built like ManiSkill's staged dense reward: every completed
earlier stage contributes its full (declared maximum) share, the current stage contributes its own
progress phi_k(s) in [0, 1], and the sum is normalised by the total:

    Phi(s, k) = (sum_{j<k} m_j + m_k * phi_k(s)) / sum_j m_j   in [0, 1]

``m`` is the per-stage on/off mask of the stage-toggle ablation (all on by default). Masking keeps
Phi a function of (state, stage), so the shaping still telescopes and leaves the optimal policy
unchanged; a masked stage simply gives no shaping signal, neither inside it nor for finishing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def stage_mask(mask: Sequence[bool] | Mapping[str, bool] | None, stage_names: Sequence[str]) -> np.ndarray:
    """(K,) float 0/1 mask from a list of K flags or a {stage name: on} mapping (missing = on)."""
    k = len(stage_names)
    if mask is None:
        return np.ones(k)
    if isinstance(mask, Mapping):
        unknown = set(mask) - set(stage_names)
        if unknown:
            raise ValueError(f"unknown stage(s) {sorted(unknown)} in the mask; stages: {list(stage_names)}")
        return np.array([float(bool(mask.get(name, True))) for name in stage_names])
    flags = np.asarray(mask, dtype=bool).reshape(-1)
    if flags.size != k:
        raise ValueError(f"stage mask has {flags.size} entries, the family has {k} stages {list(stage_names)}")
    return flags.astype(np.float64)


def staged_potential(
    phis: Sequence[np.ndarray], stage: np.ndarray, mask: Sequence[bool] | np.ndarray | None = None
) -> np.ndarray:
    """(T,) staged potential from the K per-stage progress arrays ``phis`` (each (T,) in [0, 1])
    and the stage index of each step ``stage`` (T,)."""
    k = len(phis)
    m = np.ones(k) if mask is None else np.asarray(mask, dtype=np.float64).reshape(-1)
    total = m.sum()
    stage = np.asarray(stage, dtype=np.int64)
    if total == 0:
        return np.zeros(stage.shape[0])
    done = np.concatenate([[0.0], np.cumsum(m)])[stage]  # shares of completed stages
    current = np.stack(phis, axis=1)[np.arange(stage.shape[0]), stage]
    return (done + m[stage] * np.clip(current, 0.0, 1.0)) / total


def shaping_terms(potentials: np.ndarray, gamma: float) -> np.ndarray:
    """(N,) gamma * Phi(s_{t+1}) - Phi(s_t) from the (N + 1,) potentials of N transitions."""
    phi = np.asarray(potentials, dtype=np.float64)
    return gamma * phi[1:] - phi[:-1]


def shaped_reward(rewards: np.ndarray, potentials: np.ndarray, gamma: float) -> np.ndarray:
    """(N,) r'_t = r_t + gamma * Phi_{k(t+1)}(s_{t+1}) - Phi_{k(t)}(s_t).

    ``rewards`` (N,) are the environment rewards of N transitions; ``potentials`` (N + 1,) the
    staged potentials of the states before and after them (use a 0 final potential for a terminal
    state if the episode ends by termination rather than time limit)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    potentials = np.asarray(potentials, dtype=np.float64)
    if potentials.shape[0] != rewards.shape[0] + 1:
        raise ValueError(
            f"need one more potential than rewards (states before and after each step): got "
            f"{potentials.shape[0]} potentials for {rewards.shape[0]} rewards"
        )
    return rewards + shaping_terms(potentials, gamma)
