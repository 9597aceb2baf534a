"""On-policy rollouts for PPO: whole episodes from N environments stepped together.

Each environment runs one episode at a time from its seed; all live environments are queried
together (one batched policy pass), then execute their chunks' first ``execute_steps`` actions
in lock-step. An episode ends at the first success (terminal) or after ``max_steps`` actions
(time limit: its last observation's value bootstraps the return). The stage tracker follows every
step on the privileged state, and gives the reward shaping of STA-PPO:

    r'_t = r_t + gamma * Phi_{k(t+1)}(s_{t+1}) - Phi_{k(t)}(s_t)

with Phi the staged potential (:mod:`stare_robot.stages.shaping`, per-stage mask for the
stage-toggle ablation) and r_t the sparse success reward (1 on the success step) or ManiSkill's
normalised dense reward. Without shaping r'_t = r_t.

An :class:`EpisodeRollout` keeps everything about one episode: decision-level arrays (the
observations the policy saw, likelihood records, log-probs, values, which env steps each decision
executed) and step-level arrays (actions, rewards, shaped rewards, online stages, potentials,
privileged state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stare_robot.policies.base import Observation
from stare_robot.stages import StageTracker
from stare_robot.train.actor_critic import ActorCritic
from stare_robot.train.losses_ppo import chunk_return, gae

REWARDS = ("sparse", "dense")


@dataclass
class EpisodeRollout:
    """One collected episode (D decisions, T executed steps)."""

    seed: int
    obs: list[Observation] = field(default_factory=list)  # (D) policy inputs at decision points
    records: list[np.ndarray] = field(default_factory=list)  # (D) likelihood records
    log_probs: list[float] = field(default_factory=list)  # (D) log pi_old(record | obs)
    values: list[float] = field(default_factory=list)  # (D) V_old(obs)
    spans: list[tuple[int, int]] = field(default_factory=list)  # (D) [start, stop) env steps
    actions: list[np.ndarray] = field(default_factory=list)  # (T) executed 7-D actions
    rewards: list[float] = field(default_factory=list)  # (T) env reward r_t
    shaped: list[float] = field(default_factory=list)  # (T) training reward r'_t
    stages: list[int] = field(default_factory=list)  # (T+1) online stage, reset first
    potentials: list[float] = field(default_factory=list)  # (T+1) staged potential Phi
    privileged: list[dict[str, Any]] = field(default_factory=list)  # (T+1) privileged state
    success: bool = False
    truncated: bool = False
    final_value: float = 0.0  # V(last obs) when truncated (bootstrap), else 0
    furthest_stage: int = 0

    @property
    def length(self) -> int:
        return len(self.actions)

    def decision_targets(self, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """(advantages (D,), returns (D,)) by GAE over the episode's decisions."""
        shaped = np.asarray(self.shaped, dtype=np.float64)
        chunks = [chunk_return(shaped[a:b], gamma) for a, b in self.spans]
        rewards = np.array([c[0] for c in chunks])
        discounts = np.array([c[1] for c in chunks])
        values = np.asarray(self.values, dtype=np.float64)
        next_values = np.append(values[1:], self.final_value if self.truncated else 0.0)
        ends = np.zeros(len(values), bool)
        ends[-1] = True
        return gae(rewards, discounts, values, next_values, ends, lam)


class _Running:
    """Book-keeping of the episode one environment is in."""

    def __init__(self, seed: int, tracker: StageTracker, step, reward: str, gamma: float):
        self.episode = EpisodeRollout(seed=seed)
        self.tracker, self.reward, self.gamma = tracker, reward, gamma
        self.obs = step.obs
        self.done = bool(step.success)  # solved at reset: nothing to learn, dropped
        tracker.reset()
        self._track(step)

    def _track(self, step) -> None:
        stage = self.tracker.update(dict(step.privileged))
        ep = self.episode
        ep.stages.append(int(stage))
        ep.potentials.append(float(self.tracker.potential))
        ep.privileged.append(dict(step.privileged))
        ep.furthest_stage = max(ep.furthest_stage, int(stage))

    def add_step(self, action: np.ndarray, step, max_steps: int) -> None:
        ep = self.episode
        self._track(step)
        r = float(bool(step.success)) if self.reward == "sparse" else float(step.reward)
        ep.actions.append(np.asarray(action, np.float32))
        ep.rewards.append(r)
        ep.shaped.append(r + self.gamma * ep.potentials[-1] - ep.potentials[-2])
        self.obs = step.obs
        ep.success = bool(step.success)
        if ep.success or ep.length >= max_steps:
            self.done = True
            ep.truncated = not ep.success


def collect_episodes(
    venv,
    agent: ActorCritic,
    family: str,
    seeds: Sequence[int],
    max_steps: int,
    execute_steps: int,
    generator: torch.Generator,
    reward: str = "sparse",
    gamma: float = 0.99,
    shaping: bool = True,
    shaping_mask: Mapping[str, bool] | None = None,
    obj_half_size: float = 0.02,
    progress=None,
) -> list[EpisodeRollout]:
    """One episode per seed, spread over ``venv``'s environments. ``shaping=False`` (plain PPO)
    trains on r_t; otherwise on r'_t with the stage potentials masked by ``shaping_mask``
    ({stage name: on}). ``progress`` (a tqdm bar) advances by one per finished episode.
    Episodes already successful at reset are dropped (no decision was made)."""
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r}; valid: {', '.join(REWARDS)}")
    if max_steps < 1 or execute_steps < 1:
        raise ValueError(f"max_steps and execute_steps must be >= 1, got {max_steps}, {execute_steps}")
    pending = list(seeds)[::-1]
    running: dict[int, _Running] = {}
    finished: list[EpisodeRollout] = []

    def tracker() -> StageTracker:
        t = StageTracker(family, obj_half_size=obj_half_size, mask=shaping_mask)
        if not shaping:
            t.mask = np.zeros(len(t.family.stage_names))  # Phi = 0: r'_t = r_t
        return t

    def start(indices: list[int]) -> None:
        indices = [i for i in indices if pending][: len(pending)]
        seeds_now = [pending.pop() for _ in indices]
        for i, step in venv.reset(indices, seeds_now).items():
            running[i] = _Running(seeds_now[indices.index(i)], tracker(), step, reward, gamma)

    def retire(indices: list[int]) -> None:
        cut = [i for i in indices if running[i].episode.truncated]
        if cut:
            for i, v in zip(cut, agent.values([running[i].obs for i in cut])):
                running[i].episode.final_value = float(v)
        for i in indices:
            if running[i].episode.spans:
                finished.append(running.pop(i).episode)
                if progress is not None:
                    progress.update(1)
            else:
                running.pop(i)
        start(indices)

    start(list(range(venv.num_envs)))
    retire([i for i, r in running.items() if r.done])
    while running:
        live = sorted(running)
        out = agent.act([running[i].obs for i in live], generator)
        begin = {}
        for row, i in enumerate(live):
            ep = running[i].episode
            ep.obs.append(running[i].obs)
            ep.records.append(out.records[row])
            ep.log_probs.append(float(out.log_probs[row]))
            ep.values.append(float(out.values[row]))
            begin[i] = ep.length
        for j in range(execute_steps):
            todo = {i: out.actions[row][j] for row, i in enumerate(live) if not running[i].done}
            if not todo:
                break
            for i, step in venv.step(todo).items():
                running[i].add_step(todo[i], step, max_steps)
        for i in live:
            running[i].episode.spans.append((begin[i], running[i].episode.length))
        retire([i for i in live if running[i].done])
    return finished


def flatten_decisions(
    episodes: Sequence[EpisodeRollout], gamma: float, lam: float
) -> dict[str, Any]:
    """All decisions of ``episodes`` as training arrays: ``obs`` (list of N observations),
    ``records`` (N, ...), ``log_probs``, ``values``, ``advantages``, ``returns`` (N,)."""
    obs, records, log_probs, values, advantages, returns = [], [], [], [], [], []
    for ep in episodes:
        adv, ret = ep.decision_targets(gamma, lam)
        obs += ep.obs
        records += ep.records
        log_probs += ep.log_probs
        values += ep.values
        advantages.append(adv)
        returns.append(ret)
    return {
        "obs": obs,
        "records": np.stack(records),
        "log_probs": np.asarray(log_probs),
        "values": np.asarray(values),
        "advantages": np.concatenate(advantages),
        "returns": np.concatenate(returns),
    }
