"""Pick-and-place: pick an object and bring it to a goal (PickCube; SimplerEnv put-X-on-Y)."""

from __future__ import annotations

import dataclasses

import numpy as np

from stare_robot import keys
from stare_robot.stages import geometry as geo
from stare_robot.stages.family import Conditions, FamilyConfig, StageFamily, Trajectory
from stare_robot.stages.registry import register
from stare_robot.stages.segments import StageSegments, per_stage


@dataclasses.dataclass
class PickPlaceConfig(FamilyConfig):
    obj_half_size: float = 0.02  # m, object half height; it rests at z = obj_half_size
    touch_distance: float = 0.06  # m TCP-object distance within which a contact is the gripper's
    reach_tolerance: float = 0.02  # m TCP-object distance that counts as a perfect reach
    lift_height: float = 0.01  # m above rest, or away from its start, that starts Transport
    place_margin: float = 0.05  # m object-to-goal distance that starts Place
    place_tolerance: float = 0.025  # m object-to-goal distance that counts as placed
    static_speed: float = 0.003  # m per step under which the object counts as still
    require_release: bool = False  # PickCube holds the cube at the goal; put-on tasks release it
    # potential scales (m) and weights
    d_reach: float = 0.1
    d_transport: float = 0.1
    d_place: float = 0.05
    grasp_tau: float = 5.0  # steps for tanh(consecutive grasp steps / tau)
    beta_grasped: float = 1.0
    beta_hold: float = 0.5
    beta_carry: float = 0.5
    beta_orient: float = 0.5
    # cost weights
    alpha_contact: float = 1.0
    alpha_slip: float = 1.0
    lambda_stab: float = 1.0
    stab_steps: int = 5  # M, the last steps of Place whose object motion is the cost


@register
class PickPlace(StageFamily):
    """Pick an object up and bring it to a goal position.

    Task:
        The gripper grasps the object, lifts it and carries it to ``SIM_GOAL_POS`` (PickCube's goal
        in the air; the plate for SimplerEnv's put-X-on-Y, with ``require_release=True``).

    Stages:
        reach      until the gripper touches the object   (``is_touching``: contact or grasped,
                                                            TCP within touch_distance)
        grasp      until the grasped object leaves rest   (``is_carried``: grasped, and lifted or
                                                            moved by more than lift_height)
        transport  until the object nears the goal        (``near_goal``: distance < place_margin)
        place      until placed (final stage)

    Success:
        ``is_placed``: object within ``place_tolerance`` of the goal and still (and released if
        ``require_release``).
    """

    name = "pick_place"
    stage_names = ("reach", "grasp", "transport", "place")
    required_fields = (
        keys.OBS_EE_POSE,
        keys.SIM_OBJ_POSE,
        keys.SIM_GOAL_POS,
        keys.SIM_IS_GRASPED,
        keys.SIM_CONTACT,
    )
    optional_fields = (keys.SIM_SUCCESS,)
    config_class = PickPlaceConfig
    key_distances = ("d_ee_obj", "d_obj_goal", "height")

    def goal_position(self, traj: Trajectory) -> np.ndarray:
        """(T, 3) where the object should end up."""
        return geo.as_float(traj[keys.SIM_GOAL_POS])

    def conditions(self, traj: Trajectory, history) -> Conditions:
        c = self.config
        ee = geo.as_float(traj[keys.OBS_EE_POSE])[:, :3]
        obj_pose = geo.as_float(traj[keys.SIM_OBJ_POSE])
        obj = obj_pose[:, :3]
        goal = self.goal_position(traj)
        grasped = np.asarray(traj[keys.SIM_IS_GRASPED], dtype=bool)
        contact = np.asarray(traj[keys.SIM_CONTACT], dtype=bool)

        d_ee_obj = geo.norm(ee - obj)
        d_obj_goal = geo.norm(obj - goal)
        height = obj[:, 2] - c.obj_half_size
        displacement = geo.norm(obj - history.first("obj", obj))
        speed = geo.norm(obj - history.previous("obj", obj))
        obj_in_hand = obj - ee  # moves only if the object slips in the grasp
        slip = geo.norm(obj_in_hand - history.previous("obj_in_hand", obj_in_hand))
        grasp_steps = np.where(grasped, history.run_length("grasped", grasped), 0)

        is_static = speed < c.static_speed
        is_released = ~grasped
        return {
            "obj_pos": obj,
            "goal_pos": goal,
            "d_ee_obj": d_ee_obj,
            "d_obj_goal": d_obj_goal,
            "height": height,
            "displacement": displacement,
            "speed": speed,
            "slip": slip,
            "grasp_steps": grasp_steps,
            "flatness": geo.flatness(obj_pose[:, 3:]),
            # the proximity check also rejects contact flags left over from a previous episode
            "is_touching": (contact | grasped) & (d_ee_obj < c.touch_distance),
            "is_grasped": grasped,
            "is_lifted": grasped & (height > c.lift_height),
            # a goal on the table is reached by sliding the grasped object: moving it counts too
            "is_carried": grasped & ((height > c.lift_height) | (displacement > c.lift_height)),
            "near_goal": d_obj_goal < c.place_margin,
            "is_static": is_static,
            "is_released": is_released,
            "is_placed": (
                self.placed(d_obj_goal, obj, goal) & is_static & (is_released | (not c.require_release))
            ),
        }

    def placed(self, d_obj_goal: np.ndarray, obj: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """(T,) bool: the object is where it should be (orientation and motion not checked)."""
        return d_obj_goal < self.config.place_tolerance

    def exit_events(self, cond: Conditions) -> list[np.ndarray]:
        return [cond["is_touching"], cond["is_carried"], cond["near_goal"]]

    def stage_potentials(self, cond: Conditions) -> list[np.ndarray]:
        c = self.config
        grasped = cond["is_grasped"].astype(np.float64)
        hold = np.tanh(cond["grasp_steps"] / c.grasp_tau)
        # raw terms, each divided by its declared maximum (closeness is already in [0, 1])
        grasp_max, transport_max, place_max = c.beta_grasped + c.beta_hold, 1 + c.beta_carry, 1 + c.beta_orient
        return [
            geo.closeness(cond["d_ee_obj"], c.d_reach),
            (c.beta_grasped * grasped + c.beta_hold * hold) / grasp_max,
            (geo.closeness(cond["d_obj_goal"], c.d_transport) + c.beta_carry * grasped) / transport_max,
            (geo.closeness(cond["d_obj_goal"], c.d_place) + c.beta_orient * cond["flatness"]) / place_max,
        ]

    def success(self, cond: Conditions) -> np.ndarray:
        return cond["is_placed"]

    def stage_costs(self, cond: Conditions, seg: StageSegments) -> np.ndarray:
        c = self.config
        # Transport reference path: the straight line from where transport began to the goal.
        start = seg.at_stage_start(cond["obj_pos"])
        off_path = geo.point_segment_distance(cond["obj_pos"], start, cond["goal_pos"])
        return per_stage(
            seg.last(np.maximum(cond["d_ee_obj"] - c.reach_tolerance, 0.0)),
            seg.mean(c.alpha_contact * cond["d_ee_obj"] + c.alpha_slip * cond["slip"]),
            seg.mean(off_path),
            c.lambda_stab * seg.mean_last(cond["speed"], c.stab_steps),
        )
