"""Push / pull: move an object along the table into a goal region (PushCube, PullCube)."""

from __future__ import annotations

import dataclasses

import numpy as np

from stare_robot import keys
from stare_robot.stages import geometry as geo
from stare_robot.stages.family import Conditions, FamilyConfig, StageFamily, Trajectory
from stare_robot.stages.registry import register
from stare_robot.stages.segments import StageSegments, per_stage


@dataclasses.dataclass
class PushPullConfig(FamilyConfig):
    obj_half_size: float = 0.02  # m, object half height; it rests at z = obj_half_size
    push_offset: float = 0.03  # m behind the object centre (away from the goal) to push from
    touch_distance: float = 0.08  # m TCP-object distance within which a contact is the robot's
    # m TCP-push-point distance that counts as at the contact: about one expert EE-delta step;
    # the simulator's contact flag, read once per control step, misses many brief touches
    contact_distance: float = 0.05
    nudge_distance: float = 0.002  # m of object motion that proves a touch
    moved_distance: float = 0.005  # m the object must leave its start by (Contact -> Push)
    goal_radius: float = 0.1  # m, ManiSkill's goal region radius (xy)
    table_tolerance: float = 0.01  # m above rest height that still counts as on the table
    # potential scales (m)
    d_reach: float = 0.1
    d_push: float = 0.1
    # cost weights
    alpha_contact: float = 1.0
    alpha_perp: float = 1.0  # Contact: lateral offset of the TCP from the push line
    lambda_perp: float = 1.0  # Push: object motion orthogonal to the push direction
    beta_x: float = 1.0
    beta_v: float = 1.0


@register
class PushPull(StageFamily):
    """Push (or pull) an object across the table into a goal region.

    Task:
        The gripper (closed, in ManiSkill's motion planner) moves behind the object – the side
        away from ``SIM_GOAL_POS`` – and pushes it into the goal region. Pulling is the same
        geometry with the goal on the robot's side, so one family covers PushCube and PullCube.
        The push direction ``u`` is the xy unit vector from the object's start to the goal.

    Stages:
        reach      until the robot is at the object       (``is_touching``: ``is_contact`` – the
                                                            contact flag near the object, or the
                                                            TCP within contact_distance of the
                                                            push point – or the object nudged)
        contact    until the object leaves its start      (``is_moved``: > moved_distance)
        push_pull  until the object is in the goal region (``reaches_goal``: ``in_goal``, or
                                                            ``SIM_SUCCESS`` – the action reaches it)
        goal       final stage

    Success:
        ``in_goal``: object xy within ``goal_radius`` of the goal and still on the table.
    """

    name = "push_pull"
    stage_names = ("reach", "contact", "push_pull", "goal")
    required_fields = (keys.OBS_EE_POSE, keys.SIM_OBJ_POSE, keys.SIM_GOAL_POS, keys.SIM_CONTACT)
    optional_fields = (keys.SIM_SUCCESS,)
    config_class = PushPullConfig
    key_distances = ("d_ee_push", "d_obj_goal", "displacement")

    def conditions(self, traj: Trajectory, history) -> Conditions:
        c = self.config
        ee = geo.as_float(traj[keys.OBS_EE_POSE])[:, :3]
        obj = geo.as_float(traj[keys.SIM_OBJ_POSE])[:, :3]
        goal = geo.as_float(traj[keys.SIM_GOAL_POS])
        contact = np.asarray(traj[keys.SIM_CONTACT], dtype=bool)

        start = history.first("obj", obj)
        u = geo.unit_xy(goal - start)  # (T, 2) push direction
        push_point = np.concatenate([obj[:, :2] - c.push_offset * u, obj[:, 2:]], axis=1)
        step = obj - history.previous("obj", obj)
        displacement = geo.norm(obj[:, :2] - start[:, :2])
        d_obj_goal = geo.norm(obj[:, :2] - goal[:, :2])
        is_moved = displacement > c.moved_distance
        on_table = obj[:, 2] < c.obj_half_size + c.table_tolerance
        in_goal = (d_obj_goal < c.goal_radius) & on_table
        d_ee_push = geo.norm(ee - push_point)
        # In contact: the flag (near the object), or the TCP at the push point. The simulator's
        # flag misses many pushes made in large EE-delta steps, so geometry counts as well.
        is_contact = (contact & (geo.norm(ee - obj) < c.touch_distance)) | (
            d_ee_push < c.contact_distance
        )
        # Stored demos hold the state *before* each action and sim/success *after* it, and stop
        # at success: the step whose action reaches the goal is the Goal stage's entry.
        reaches_goal = in_goal | np.asarray(traj.get(keys.SIM_SUCCESS, in_goal), dtype=bool)
        return {
            "d_ee_push": d_ee_push,
            "d_perp": np.abs(geo.cross_2d(u, ee[:, :2] - obj[:, :2])),
            "displacement": displacement,
            "d_obj_goal": d_obj_goal,
            "step_perp": np.abs(geo.cross_2d(u, step[:, :2])),
            "speed": geo.norm(step),
            "is_contact": is_contact,
            "is_touching": is_contact | (displacement > c.nudge_distance),
            "is_moved": is_moved,
            "on_table": on_table,
            "in_goal": in_goal,
            "reaches_goal": reaches_goal,
        }

    def exit_events(self, cond: Conditions) -> list[np.ndarray]:
        return [cond["is_touching"], cond["is_moved"], cond["reaches_goal"]]

    def stage_potentials(self, cond: Conditions) -> list[np.ndarray]:
        c = self.config
        return [
            geo.closeness(cond["d_ee_push"], c.d_reach),
            cond["is_contact"].astype(np.float64),
            geo.closeness(cond["d_obj_goal"], c.d_push),
            cond["in_goal"].astype(np.float64),
        ]

    def success(self, cond: Conditions) -> np.ndarray:
        return cond["in_goal"]

    def stage_costs(self, cond: Conditions, seg: StageSegments) -> np.ndarray:
        c = self.config
        # Push: distance still to go into the goal region when pushing stopped, plus sideways drift.
        outside_goal = np.maximum(cond["d_obj_goal"] - c.goal_radius, 0.0)
        return per_stage(
            seg.last(np.maximum(cond["d_ee_push"] - c.contact_distance, 0.0)),
            seg.mean(c.alpha_contact * (~cond["is_contact"]) + c.alpha_perp * cond["d_perp"]),
            seg.last(outside_goal) + c.lambda_perp * seg.mean(cond["step_perp"]),
            seg.mean(c.beta_x * cond["d_obj_goal"] + c.beta_v * cond["speed"]),
        )
