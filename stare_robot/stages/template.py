"""Template for a new stage family — copy this file, rename, fill in, then import it in
``stare_robot/stages/__init__.py`` (registration is explicit; a test checks the registry).

Checklist:
1. Pick a short ``name`` (it is stored in each episode's ``stage_family`` attr) and list the
   ordered ``stage_names``. The event that ends stage k is the entry of stage k + 1.
2. Declare ``required_fields`` (keys from ``stare_robot.keys``) so a trajectory without one fails
   with a clear error; put thresholds in the config dataclass, in metres / radians / steps.
3. In ``conditions`` compute every distance once and name every boolean sub-condition
   (``is_grasped``, ``in_goal`` ...). Reach the past only through ``history`` (``first``,
   ``previous``, ``run_length``, ``latch``) so the online tracker matches the offline separator.
4. ``stage_potentials``: one progress term per stage, each normalised to [0, 1] by its declared
   maximum; the calculator gates them on the completed stages.
5. ``stage_costs``: 0 for a perfect stage, growing with the error; aggregate with ``seg.mean`` /
   ``seg.last`` / ``seg.mean_last`` and assemble with ``per_stage``.
6. Add tests: a hand-computed cost and potential on a small synthetic trajectory, and real demos.

This module is deliberately not imported by the package, so the template is never registered.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stare_robot import keys
from stare_robot.stages import geometry as geo
from stare_robot.stages.family import Conditions, FamilyConfig, StageFamily, Trajectory
from stare_robot.stages.registry import register  # noqa: F401  (used by your copy)
from stare_robot.stages.segments import StageSegments, per_stage


@dataclasses.dataclass
class TemplateConfig(FamilyConfig):
    touch_distance: float = 0.03  # m: the gripper is at the object (Reach -> Act)
    goal_tolerance: float = 0.05  # m: the object is at the goal (Act -> Done)
    d_reach: float = 0.1  # m: scale of the reach potential


# @register  <- uncomment in your copy (left off here so the template never registers)
class TemplateFamily(StageFamily):
    """One sentence on the task family.

    Task:
        What the robot does and which trajectory fields describe it.

    Stages:
        reach  until the gripper is at the object   (``is_at_object``)
        act    until the object is at the goal      (``at_goal``)
        done   final stage

    Success:
        ``at_goal``.
    """

    name = "template"
    stage_names = ("reach", "act", "done")
    required_fields = (keys.OBS_EE_POSE, keys.SIM_OBJ_POSE, keys.SIM_GOAL_POS)
    config_class = TemplateConfig
    key_distances = ("d_ee_obj", "d_obj_goal")  # plotted by `stare-robot stages show`

    def conditions(self, traj: Trajectory, history) -> Conditions:
        c = self.config
        ee = np.asarray(traj[keys.OBS_EE_POSE], dtype=np.float64)[:, :3]
        obj = np.asarray(traj[keys.SIM_OBJ_POSE], dtype=np.float64)[:, :3]
        goal = np.asarray(traj[keys.SIM_GOAL_POS], dtype=np.float64)
        d_ee_obj = geo.norm(ee - obj)
        d_obj_goal = geo.norm(obj - goal)
        return {
            "d_ee_obj": d_ee_obj,
            "d_obj_goal": d_obj_goal,
            "is_at_object": d_ee_obj < c.touch_distance,
            "at_goal": d_obj_goal < c.goal_tolerance,
        }

    def exit_events(self, cond: Conditions) -> list[np.ndarray]:
        return [cond["is_at_object"], cond["at_goal"]]

    def stage_potentials(self, cond: Conditions) -> list[np.ndarray]:
        c = self.config
        return [
            geo.closeness(cond["d_ee_obj"], c.d_reach),
            geo.closeness(cond["d_obj_goal"], c.goal_tolerance),
            cond["at_goal"].astype(np.float64),
        ]

    def success(self, cond: Conditions) -> np.ndarray:
        return cond["at_goal"]

    def stage_costs(self, cond: Conditions, seg: StageSegments) -> np.ndarray:
        return per_stage(
            seg.last(cond["d_ee_obj"]),
            seg.mean(cond["d_obj_goal"]),
            seg.mean(cond["d_obj_goal"]),
        )
