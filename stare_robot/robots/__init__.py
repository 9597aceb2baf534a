"""Robot profiles and kinematics for the robot bridges (pure library: no rclpy, no simulator).

    from stare_robot.robots import get_profile, Kinematics, EEDeltaCommander

    profile = get_profile("panda")                      # joint names, limits, home, workspace
    kin = Kinematics(profile)                           # FK / IK from the robot's URDF (pinocchio)
    cmd = EEDeltaCommander(profile, kin).command(q, action)   # 7-D EE delta -> safe joint targets
"""

from __future__ import annotations

from stare_robot.robots.commander import ActionError, ArmCommand, EEDeltaCommander
from stare_robot.robots.kinematics import IKResult, Kinematics
from stare_robot.robots.profiles import (
    PROFILES,
    JointStateError,
    RobotProfile,
    UnknownRobotError,
    get_profile,
    order_joints,
)

__all__ = [
    "PROFILES",
    "ActionError",
    "ArmCommand",
    "EEDeltaCommander",
    "IKResult",
    "JointStateError",
    "Kinematics",
    "RobotProfile",
    "UnknownRobotError",
    "get_profile",
    "order_joints",
]
