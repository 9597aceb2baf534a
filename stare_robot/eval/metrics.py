"""Evaluation metrics over a set of episodes: success with a confidence interval, grasp success,
conditional stage success and episode length.

Works on :class:`EpisodeOutcome` records, which simulation rollouts and recorded robot episodes
both produce, so "sim" and "real" are reported the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from stare_robot.stages.calculator import conditional_stage_success as stage_rows


@dataclass
class EpisodeOutcome:
    """What evaluation keeps of one episode."""

    seed: int | None
    success: bool
    length: int  # steps executed
    furthest_stage: int  # index of the furthest stage reached (0 = first stage)
    grasped: bool | None = None  # None when the task has no grasp
    extra: dict = field(default_factory=dict)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for a binomial proportion (well-behaved at 0 and n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def conditional_stage_success(furthest: Sequence[int], num_stages: int) -> list[dict]:
    """P(reach stage k | reached stage k-1) for k = 1..K-1, counted by the stage engine
    (:func:`stare_robot.stages.calculator.conditional_stage_success`), as report rows.

    ``furthest[i]`` is the furthest stage index episode i reached. Returns one row per stage k >= 1:
    ``{"stage": k, "reached_prev": n_{k-1}, "reached": n_k, "rate": n_k / n_{k-1} or None}``.
    """
    rows = stage_rows(furthest, [str(k) for k in range(num_stages)])
    return [{"stage": k, "reached_prev": r.given, "reached": r.reached,
             "rate": r.probability if r.given else None}
            for k, r in enumerate(rows) if k >= 1]


def summarize(outcomes: Sequence[EpisodeOutcome], stage_names: Sequence[str]) -> dict:
    """Aggregate episode outcomes into the numbers every report shows."""
    n = len(outcomes)
    wins = sum(o.success for o in outcomes)
    lo, hi = wilson_interval(wins, n)
    grasp_known = [o.grasped for o in outcomes if o.grasped is not None]
    rows = conditional_stage_success([o.furthest_stage for o in outcomes], len(stage_names))
    for row in rows:
        row["name"] = stage_names[row["stage"]]
    success_row = stage_rows([o.furthest_stage for o in outcomes], stage_names,
                             [o.success for o in outcomes])[-1]
    return {
        "episodes": n,
        "success_rate": wins / n if n else 0.0,
        "success_ci95": [lo, hi],
        "grasp_rate": (sum(grasp_known) / len(grasp_known)) if grasp_known else None,
        "mean_length": (sum(o.length for o in outcomes) / n) if n else 0.0,
        "stage_names": list(stage_names),
        "reached_fraction": [sum(1 for o in outcomes if o.furthest_stage >= k) / n if n else 0.0
                             for k in range(len(stage_names))],
        "conditional_stage_success": rows,
        "success_given_last_stage": success_row.probability if success_row.given else None,
        "per_episode": [asdict(o) for o in outcomes],
    }
