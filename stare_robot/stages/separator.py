"""The stage separator: which stage each step is in, offline (:func:`segment`) or online
(:class:`StageTracker`).

Rule (the same for both): an episode starts in stage 0; at each step, if the event that ends the
current stage holds, the step already belongs to the next stage. At most one stage is crossed per
step, stages never go back, and an episode that never meets a stage's exit stays in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stare_robot.stages.family import Conditions, StageFamily, Trajectory
from stare_robot.stages.history import EpisodeBatch, OnlineHistory
from stare_robot.stages.registry import get_family
from stare_robot.stages.shaping import stage_mask, staged_potential


@dataclass
class Segmentation:
    """Result of the separator over ``E`` concatenated episodes (``T`` steps in all)."""

    family: StageFamily
    batch: EpisodeBatch
    conditions: Conditions  # named per-step quantities (T,)
    stage: np.ndarray  # (T,) int16 stage index
    transitions: np.ndarray  # (E, K-1) step (from episode start) where stage k+1 begins, -1 never

    @property
    def furthest_stage(self) -> np.ndarray:
        """(E,) highest stage reached by each episode."""
        return (self.transitions >= 0).sum(axis=1)


def _scan(exits: list[np.ndarray], batch: EpisodeBatch) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised monotone scan over episodes: one pass over the steps per stage boundary."""
    n, idx, episode = batch.num_steps, batch.index, batch.episode_of_step
    stage = np.zeros(n, dtype=np.int16)
    transitions = np.full((batch.num_episodes, len(exits)), -1, dtype=np.int64)
    search_from = batch.starts.copy()  # (E,) first step where the current exit may fire
    for k, event in enumerate(exits):
        # next step at or after each index where the event holds (n if none)
        nxt = np.minimum.accumulate(np.where(event, idx, n)[::-1])[::-1]
        active = search_from < batch.ends
        hit_at = np.where(active, nxt[np.minimum(search_from, n - 1)], n)
        hit = active & (hit_at < batch.ends)
        hit_at = np.where(hit, hit_at, n)
        stage += idx >= hit_at[episode]
        transitions[:, k] = np.where(hit, hit_at - batch.starts, -1)
        search_from = np.where(hit, hit_at + 1, batch.ends)  # next stage: from the step after
    return stage, transitions


def run_separator(
    family: str | StageFamily, traj: Trajectory, lengths: Sequence[int] | None = None
) -> Segmentation:
    """Conditions and stages of one trajectory, or of several concatenated (``lengths``)."""
    fam = get_family(family)
    n = fam.check(traj)
    batch = EpisodeBatch([n] if lengths is None else lengths)
    if batch.num_steps != n:
        raise ValueError(f"episode lengths sum to {batch.num_steps} but the trajectory has {n} steps")
    cond = fam.conditions(traj, batch)
    exits = [np.asarray(e, dtype=bool) for e in fam.exit_events(cond)]
    stage, transitions = _scan(exits, batch)
    return Segmentation(fam, batch, cond, stage, transitions)


def segment(
    family: str | StageFamily, traj: Trajectory, lengths: Sequence[int] | None = None
) -> np.ndarray:
    """(T,) int16 stage index of every step (offline, vectorised over time and episodes).

    ``traj`` maps :mod:`stare_robot.keys` names to ``(T, ...)`` arrays; ``lengths`` splits a
    concatenation of several episodes (default: one episode).
    """
    return run_separator(family, traj, lengths).stage


class StageTracker:
    """Online separator for rollouts and the ROS recorder: feed one step at a time.

    ``update(step)`` takes a dict of the same keys without the time axis and returns the stage of
    that step — exactly :func:`segment`'s label for it. ``potential`` is the staged potential of
    the last step (see :func:`stare_robot.stages.shaping.staged_potential`).
    """

    def __init__(
        self,
        family: str | StageFamily,
        mask: Sequence[bool] | Mapping[str, bool] | None = None,
        **config: Any,
    ):
        self.family = get_family(family, **config)
        self.mask = stage_mask(mask, self.family.stage_names)  # (K,) stage-toggle ablation
        self.reset()

    def reset(self) -> None:
        self.stage = 0
        self.num_steps = 0
        self.keyframes: list[int] = []  # filled by families that publish keyframe events
        self.conditions: Conditions = {}
        self._history = OnlineHistory()
        self._potential: float | None = 0.0

    @property
    def stage_name(self) -> str:
        return self.family.stage_names[self.stage]

    @property
    def potential(self) -> float:
        """Staged potential Phi_{k(t)}(s_t) in [0, 1] of the last step (computed on demand)."""
        if self._potential is None:
            phis = self.family.stage_potentials(self.conditions)
            self._potential = float(staged_potential(phis, np.array([self.stage]), self.mask)[0])
        return self._potential

    def update(self, step: Mapping[str, Any]) -> int:
        traj = {k: np.asarray(v)[None] for k, v in step.items()}
        if self.num_steps == 0:
            self.family.check(traj)
        cond = self.family.conditions(traj, self._history)
        self._history.commit()
        exits = self.family.exit_events(cond)
        if self.stage < len(exits) and bool(exits[self.stage][0]):
            self.stage += 1
        if "keyframe" in cond and bool(cond["keyframe"][0]):
            self.keyframes.append(self.num_steps - int(cond["keyframe_lag"][0]))
        self.conditions = cond
        self._potential = None
        self.num_steps += 1
        return self.stage
