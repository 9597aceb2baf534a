"""Per-stage aggregation over labelled steps: the building blocks of stage costs.

Given the stage label of every step of ``E`` concatenated episodes, a step belongs to the group
``episode * K + stage``. Stages are monotone inside an episode, so group ids never decrease along
time and each group is one contiguous run — every aggregate is a ``bincount`` or an index lookup.
"""

from __future__ import annotations

import numpy as np

from stare_robot.stages.history import EpisodeBatch


class StageSegments:
    """Stage runs of a batch of labelled episodes. All results are ``(E, K)``, NaN if unvisited."""

    def __init__(self, batch: EpisodeBatch, stage: np.ndarray, num_stages: int):
        self.batch = batch
        self.num_stages = num_stages
        self.group = batch.episode_of_step * num_stages + stage.astype(np.int64)  # (T,)
        n_groups = batch.num_episodes * num_stages
        ids = np.arange(n_groups)
        self.count = np.bincount(self.group, minlength=n_groups)  # (E*K,)
        self.first_step = np.searchsorted(self.group, ids, side="left")  # (E*K,) first step index
        self.last_step = np.searchsorted(self.group, ids, side="right") - 1  # (E*K,) last step index
        self.visited = self.count > 0

    def _shape(self, flat: np.ndarray) -> np.ndarray:
        out = np.where(self.visited, flat, np.nan)
        return out.reshape(self.batch.num_episodes, self.num_stages)

    def mean(self, term: np.ndarray) -> np.ndarray:
        """Mean of a per-step term (T,) over each stage's steps."""
        total = np.bincount(self.group, weights=term, minlength=self.count.size)
        return self._shape(total / np.maximum(self.count, 1))

    def last(self, term: np.ndarray) -> np.ndarray:
        """Value of a per-step term (T,) at each stage's last step."""
        return self._shape(term[np.clip(self.last_step, 0, term.shape[0] - 1)])

    def mean_last(self, term: np.ndarray, m: int) -> np.ndarray:
        """Mean of a per-step term (T,) over the last ``m`` steps of each stage."""
        in_tail = self.batch.index > self.last_step[self.group] - m
        total = np.bincount(self.group, weights=np.where(in_tail, term, 0.0), minlength=self.count.size)
        return self._shape(total / np.maximum(np.minimum(self.count, m), 1))

    def at_stage_start(self, x: np.ndarray) -> np.ndarray:
        """(T, ...) value of ``x`` at the first step of each step's stage."""
        return x[self.first_step[self.group]]

    def steps_in_stage(self) -> np.ndarray:
        """(E, K) number of steps spent in each stage (0 if never entered)."""
        return self.count.reshape(self.batch.num_episodes, self.num_stages)


def per_stage(*columns: np.ndarray) -> np.ndarray:
    """Assemble ``(E, K)`` costs from K aggregates: column k of the k-th ``(E, K)`` aggregate."""
    return np.stack([col[:, k] for k, col in enumerate(columns)], axis=1)
