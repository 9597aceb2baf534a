"""The stage calculator: per-stage costs, staged potentials, shaped rewards and conditional
stage success, for any family (offline, over one or many concatenated episodes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stare_robot import keys
from stare_robot.stages.family import StageFamily, Trajectory
from stare_robot.stages.segments import StageSegments
from stare_robot.stages.separator import Segmentation, run_separator
from stare_robot.stages.shaping import stage_mask, staged_potential

Mask = Sequence[bool] | Mapping[str, bool] | None


def _segmentation(family, traj, lengths) -> Segmentation:
    return family if isinstance(family, Segmentation) else run_separator(family, traj, lengths)


def stage_costs(
    family: str | StageFamily | Segmentation,
    traj: Trajectory | None = None,
    lengths: Sequence[int] | None = None,
) -> np.ndarray:
    """(E, K) cost l_k of each stage of each episode; 0 = perfect, NaN = stage never entered.

    Pass a family and a trajectory, or a :class:`Segmentation` already computed."""
    seg = _segmentation(family, traj, lengths)
    segments = StageSegments(seg.batch, seg.stage, seg.family.num_stages)
    return seg.family.stage_costs(seg.conditions, segments)


def potentials(
    family: str | StageFamily | Segmentation,
    traj: Trajectory | None = None,
    lengths: Sequence[int] | None = None,
    mask: Mask = None,
) -> np.ndarray:
    """(T,) staged potential Phi_{k(t)}(s_t) in [0, 1] of every step (see :mod:`.shaping`)."""
    seg = _segmentation(family, traj, lengths)
    phis = seg.family.stage_potentials(seg.conditions)
    return staged_potential(phis, seg.stage, stage_mask(mask, seg.family.stage_names))


def episode_success(seg: Segmentation, traj: Trajectory) -> np.ndarray:
    """(E,) bool success at each episode's last step: the simulator's ``SIM_SUCCESS`` when the
    trajectory has it, else the family's own success rule."""
    last = seg.batch.ends - 1
    if keys.SIM_SUCCESS in traj:
        return np.asarray(traj[keys.SIM_SUCCESS], dtype=bool)[last]
    return np.asarray(seg.family.success(seg.conditions), dtype=bool)[last]


@dataclass(frozen=True)
class StageSuccess:
    """P(reach ``stage`` | reached the stage before) with the counts behind it."""

    stage: str
    reached: int  # episodes that reached this stage
    given: int  # episodes that reached the stage before

    @property
    def probability(self) -> float:
        return self.reached / self.given if self.given else float("nan")

    def to_dict(self) -> dict:
        return {"stage": self.stage, "reached": self.reached, "given": self.given,
                "probability": self.probability}


SUCCESS_ROW = "success"  # name of the row P(success | reached the final stage)


def conditional_stage_success(
    furthest_stage: Sequence[int] | np.ndarray,
    stage_names: Sequence[str],
    success: Sequence[bool] | np.ndarray | None = None,
) -> list[StageSuccess]:
    """P(reach stage k | reached stage k-1) for k = 0..K-1 (stage 0: given = all episodes), then,
    if ``success`` (E,) is given, P(success | reached the final stage) as a row named "success".

    ``furthest_stage`` (E,) is the highest stage index each episode reached."""
    furthest = np.asarray(furthest_stage, dtype=np.int64).reshape(-1)
    k = len(stage_names)
    if furthest.size and (furthest.min() < 0 or furthest.max() >= k):
        raise ValueError(f"furthest stage must be in 0..{k - 1} for stages {list(stage_names)}")
    reached = [int((furthest >= j).sum()) for j in range(k)]
    rows = [StageSuccess(stage_names[0], reached[0], int(furthest.size))]
    rows += [StageSuccess(stage_names[j], reached[j], reached[j - 1]) for j in range(1, k)]
    if success is not None:
        ok = np.asarray(success, dtype=bool).reshape(-1)
        if ok.shape != furthest.shape:
            raise ValueError(f"success has {ok.size} entries for {furthest.size} episodes")
        rows.append(StageSuccess(SUCCESS_ROW, int((ok & (furthest == k - 1)).sum()), reached[-1]))
    return rows
