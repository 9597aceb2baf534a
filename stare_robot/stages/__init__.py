"""STARE: stage separator, stage calculator, task families and gripper keyframes (StaKe).

Pure numpy; imports no simulator. Every family module is imported here explicitly so that the
registry is complete whenever this package is imported (tests check it lists them all)::

    from stare_robot import stages
    stage = stages.segment("push_pull", traj)            # (T,) stage index per step
    costs = stages.stage_costs("push_pull", traj)        # (1, K) per-stage cost
    phi = stages.potentials("push_pull", traj)           # (T,) staged potential in [0, 1]
    tracker = stages.StageTracker("push_pull")           # online: tracker.update(step) -> stage
"""

from __future__ import annotations

# Family modules: one per task family. Add new ones here (copy template.py).
from stare_robot.stages import gripper, lift_upright, pick_place, push_pull, stack  # noqa: F401
from stare_robot.stages.annotate import EpisodeAnnotation, annotate_episode, annotate_trajectory
from stare_robot.stages.calculator import (
    StageSuccess,
    conditional_stage_success,
    episode_success,
    potentials,
    stage_costs,
)
from stare_robot.stages.family import StageFamily, TrajectoryError
from stare_robot.stages.gripper import gripper_keyframes, keyframe_targets, motion_skill_labels
from stare_robot.stages.registry import UnknownFamilyError, family_names, get_family, register
from stare_robot.stages.separator import Segmentation, StageTracker, run_separator, segment
from stare_robot.stages.shaping import shaped_reward, shaping_terms, staged_potential

__all__ = [
    "EpisodeAnnotation",
    "Segmentation",
    "StageFamily",
    "StageSuccess",
    "StageTracker",
    "TrajectoryError",
    "UnknownFamilyError",
    "annotate_episode",
    "annotate_trajectory",
    "conditional_stage_success",
    "episode_success",
    "family_names",
    "get_family",
    "gripper_keyframes",
    "keyframe_targets",
    "motion_skill_labels",
    "potentials",
    "register",
    "run_separator",
    "segment",
    "shaped_reward",
    "shaping_terms",
    "stage_costs",
    "staged_potential",
]
