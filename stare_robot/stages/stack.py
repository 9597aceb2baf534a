"""Stack: put one cube on top of another (StackCube)."""

from __future__ import annotations

import dataclasses

import numpy as np

from stare_robot import keys
from stare_robot.stages import geometry as geo
from stare_robot.stages.family import Trajectory
from stare_robot.stages.pick_place import PickPlace, PickPlaceConfig
from stare_robot.stages.registry import register


@dataclasses.dataclass
class StackConfig(PickPlaceConfig):
    require_release: bool = True  # a stack counts only once the gripper lets go
    # ManiSkill's rule: xy offset <= |(h, h)| + 5 mm, z offset within 5 mm of a cube height
    stack_xy_tolerance: float = 0.0333
    stack_z_tolerance: float = 0.005


@register
class Stack(PickPlace):
    """Stack the held cube on the lower cube (``SIM_TARGET_POSE``).

    Task:
        Grasp cube A (``SIM_OBJ_POSE``), lift it, carry it over cube B (``SIM_TARGET_POSE``) and
        release it there. The goal position is B's centre raised by one cube height.

    Stages:
        reach      until the gripper touches cube A   (``is_touching``: contact or grasped, near)
        grasp      until A leaves its rest              (``is_carried``: grasped, lifted or moved)
        transport  until A nears its place on B        (``near_goal``: distance < place_margin)
        place      until A is stacked (final stage)

    Success:
        ``is_placed``: A aligned on B (xy within ``stack_xy_tolerance``, height within
        ``stack_z_tolerance`` of one cube height above B), released and still.
    """

    name = "stack"
    required_fields = (
        keys.OBS_EE_POSE,
        keys.SIM_OBJ_POSE,
        keys.SIM_TARGET_POSE,
        keys.SIM_IS_GRASPED,
        keys.SIM_CONTACT,
    )
    config_class = StackConfig

    def goal_position(self, traj: Trajectory) -> np.ndarray:
        lower = geo.as_float(traj[keys.SIM_TARGET_POSE])[:, :3]
        return lower + np.array([0.0, 0.0, 2.0 * self.config.obj_half_size])

    def placed(self, d_obj_goal: np.ndarray, obj: np.ndarray, goal: np.ndarray) -> np.ndarray:
        c = self.config
        aligned_xy = geo.norm(obj[:, :2] - goal[:, :2]) <= c.stack_xy_tolerance
        on_top = np.abs(obj[:, 2] - goal[:, 2]) <= c.stack_z_tolerance
        return aligned_xy & on_top
