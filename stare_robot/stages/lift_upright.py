"""Lift upright: pick a lying peg up and stand it on its end (LiftPegUpright)."""

from __future__ import annotations

import dataclasses

import numpy as np

from stare_robot import keys
from stare_robot.stages import geometry as geo
from stare_robot.stages.family import Conditions, FamilyConfig, StageFamily, Trajectory
from stare_robot.stages.registry import register
from stare_robot.stages.segments import StageSegments, per_stage


@dataclasses.dataclass
class LiftUprightConfig(FamilyConfig):
    obj_half_size: float = 0.025  # m, the lying peg's half height (its half width)
    peg_half_length: float = 0.12  # m, half length along the peg's long axis
    peg_axis: tuple[float, float, float] = (1.0, 0.0, 0.0)  # long axis in the peg's frame
    touch_distance: float = 0.05  # m TCP-peg distance within which a contact is the gripper's
    reach_tolerance: float = 0.02  # m TCP-peg distance that counts as a perfect reach
    lift_height: float = 0.01  # m above rest that counts as lifted (Grasp -> Lift)
    lift_clearance: float = 0.05  # m above rest that ends Lift (room to turn the peg)
    upright_tolerance: float = 0.08  # rad between the peg axis and vertical (ManiSkill's)
    table_tolerance: float = 0.005  # m, standing peg centre within this of peg_half_length
    # potential scales and weights
    d_reach: float = 0.1
    h_lift: float = 0.05
    # cost weights
    alpha_contact: float = 1.0
    alpha_slip: float = 1.0


@register
class LiftUpright(StageFamily):
    """Lift a peg lying on the table and stand it upright.

    Task:
        The gripper grasps the lying peg (``SIM_OBJ_POSE``), lifts it, turns it so its long axis
        is vertical and sets it down on its end. Distances to the peg are to its central axis
        segment, so any grasp point along the peg counts as reached.

    Stages:
        reach    until the gripper touches the peg        (``is_touching``: contact or grasped, near)
        grasp    until the grasped peg leaves the table   (``is_lifted``: height > lift_height)
        lift     until the peg is clear of the table      (``is_raised``: height > lift_clearance)
        upright  final stage: turn and set down

    Success:
        ``is_upright`` (axis within ``upright_tolerance`` of vertical) and ``on_table`` (centre
        at ``peg_half_length`` above the table).
    """

    name = "lift_upright"
    stage_names = ("reach", "grasp", "lift", "upright")
    required_fields = (keys.OBS_EE_POSE, keys.SIM_OBJ_POSE, keys.SIM_IS_GRASPED, keys.SIM_CONTACT)
    optional_fields = (keys.SIM_SUCCESS,)
    config_class = LiftUprightConfig
    key_distances = ("d_ee_peg", "height", "tilt")

    def conditions(self, traj: Trajectory, history) -> Conditions:
        c = self.config
        ee = geo.as_float(traj[keys.OBS_EE_POSE])[:, :3]
        peg = geo.as_float(traj[keys.SIM_OBJ_POSE])
        grasped = np.asarray(traj[keys.SIM_IS_GRASPED], dtype=bool)
        contact = np.asarray(traj[keys.SIM_CONTACT], dtype=bool)

        centre = peg[:, :3]
        axis = geo.quat_rotate(peg[:, 3:], np.asarray(c.peg_axis, dtype=np.float64))
        half = c.peg_half_length * axis
        height = centre[:, 2] - c.obj_half_size
        tilt = geo.axis_angle_to_vertical(axis)
        peg_in_hand = centre - ee
        slip = geo.norm(peg_in_hand - history.previous("peg_in_hand", peg_in_hand))
        is_upright = tilt < c.upright_tolerance
        on_table = np.abs(centre[:, 2] - c.peg_half_length) < c.table_tolerance
        d_ee_peg = geo.point_segment_distance(ee, centre - half, centre + half)
        return {
            "d_ee_peg": d_ee_peg,
            "height": height,
            "tilt": tilt,
            "cos_up": np.abs(axis[:, 2]),
            "slip": slip,
            # the proximity check also rejects contact flags left over from a previous episode
            "is_touching": (contact | grasped) & (d_ee_peg < c.touch_distance),
            "is_grasped": grasped,
            "is_lifted": grasped & (height > c.lift_height),
            "is_raised": height > c.lift_clearance,
            "is_upright": is_upright,
            "on_table": on_table,
            "is_standing": is_upright & on_table,
        }

    def exit_events(self, cond: Conditions) -> list[np.ndarray]:
        return [cond["is_touching"], cond["is_lifted"], cond["is_raised"]]

    def stage_potentials(self, cond: Conditions) -> list[np.ndarray]:
        c = self.config
        # 2*sigma(h / h_lift) - 1: 0 at rest, -> 1 high up (sigma shifted so resting scores 0)
        lift = np.clip(2.0 * geo.sigmoid(cond["height"] / c.h_lift) - 1.0, 0.0, 1.0)
        return [
            geo.closeness(cond["d_ee_peg"], c.d_reach),
            cond["is_grasped"].astype(np.float64),
            lift,
            cond["cos_up"],
        ]

    def success(self, cond: Conditions) -> np.ndarray:
        return cond["is_standing"]

    def stage_costs(self, cond: Conditions, seg: StageSegments) -> np.ndarray:
        c = self.config
        return per_stage(
            seg.last(np.maximum(cond["d_ee_peg"] - c.reach_tolerance, 0.0)),
            seg.mean(c.alpha_contact * cond["d_ee_peg"] + c.alpha_slip * cond["slip"]),
            seg.last(np.maximum(c.lift_clearance - cond["height"], 0.0)),
            seg.last(cond["tilt"]),
        )
