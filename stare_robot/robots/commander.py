"""Turn the policy's 7-D end-effector-delta actions into safe joint targets for a real arm.

The action convention is ManiSkill3's ``pd_ee_delta_pose`` (see ``stare_robot.robots.ee_action``):
the translation is added to the TCP position in the robot-base frame, the rotation is applied on the
left of the TCP orientation in the base frame, both relative to the *measured* pose (not to the
previous target), and the gripper entry maps -1 .. +1 to the closed .. open finger command.

On top of what ManiSkill's controller does, every command is made safe in this order:

1. the target position is clamped into the profile's workspace box;
2. inverse kinematics from the measured joints; if it does not converge the arm holds (as
   ManiSkill's controller does);
3. the joint targets are clamped to the joint limits;
4. the move is shortened along its own direction so no joint moves more than ``max_joint_step``;
5. the time given to reach the target (:meth:`EEDeltaCommander.duration`, the trajectory point's
   ``time_from_start``) is stretched so no joint exceeds its ``max_joint_velocity``.

    commander = EEDeltaCommander(get_profile("panda"))
    cmd = commander.command(q_measured, action)    # ArmCommand: q_target (7,), gripper, ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from stare_robot.keys import ACTION_DIM
from stare_robot.robots.ee_action import action_to_pose_delta
from stare_robot.robots.kinematics import Kinematics
from stare_robot.robots.profiles import RobotProfile
from stare_robot.validation import ChunkError, validate_action

# Names of the safety steps that changed a command (ArmCommand.limited).
LIMIT_WORKSPACE = "workspace"
LIMIT_IK_FAILED = "ik_failed"
LIMIT_JOINTS = "joint_limits"
LIMIT_STEP = "max_step"


class ActionError(ValueError):
    """An action that is not 7 finite numbers."""


@dataclass(frozen=True)
class ArmCommand:
    """What to send to the arm for one action. Poses: (7,) ``[xyz, wxyz]``, base frame."""

    q_target: np.ndarray  # (dof,) joint position targets, always within limits
    gripper: float  # finger position command (metres, profile.gripper_range)
    current_pose: np.ndarray  # TCP pose of the measured joints
    target_pose: np.ndarray  # TCP pose the action asked for (after the workspace clamp)
    limited: tuple[str, ...]  # which safety steps changed the command (LIMIT_* names)


def _rot(quat_wxyz: np.ndarray) -> Rotation:
    w, x, y, z = quat_wxyz
    return Rotation.from_quat([x, y, z, w])


def _quat_wxyz(rot: Rotation) -> np.ndarray:
    x, y, z, w = rot.as_quat()
    return np.array([w, x, y, z])


def check_action(action: Sequence[float] | np.ndarray) -> np.ndarray:
    """(7,) float64 copy of ``action``; raises :class:`ActionError` naming what is wrong."""
    try:
        return validate_action(action, ACTION_DIM).copy()
    except ChunkError as e:
        raise ActionError(f"{e} ([dx, dy, dz, drx, dry, drz, gripper])") from None


class EEDeltaCommander:
    """EE-delta action + measured joints -> :class:`ArmCommand` (see the module docstring)."""

    def __init__(
        self,
        profile: RobotProfile,
        kinematics: Kinematics | None = None,
        workspace_low: Sequence[float] | None = None,
        workspace_high: Sequence[float] | None = None,
        max_joint_step: float | None = None,
        max_joint_velocity: Sequence[float] | None = None,
    ):
        self.profile = profile
        self.kinematics = kinematics if kinematics is not None else Kinematics(profile)
        self.workspace_low = np.asarray(
            profile.workspace_low if workspace_low is None else workspace_low, dtype=np.float64
        )
        self.workspace_high = np.asarray(
            profile.workspace_high if workspace_high is None else workspace_high, dtype=np.float64
        )
        if self.workspace_low.shape != (3,) or self.workspace_high.shape != (3,):
            raise ValueError("workspace_low / workspace_high must be 3 numbers (x, y, z) each")
        if np.any(self.workspace_low >= self.workspace_high):
            raise ValueError(
                f"workspace box is empty: low {self.workspace_low} must be below high "
                f"{self.workspace_high} on every axis"
            )
        self.max_joint_step = float(profile.max_joint_step if max_joint_step is None else max_joint_step)
        if not self.max_joint_step > 0:
            raise ValueError(f"max_joint_step must be > 0 radians, got {self.max_joint_step}")
        self.max_joint_velocity = np.asarray(
            profile.max_joint_velocity if max_joint_velocity is None else max_joint_velocity,
            dtype=np.float64,
        ).reshape(-1)
        if self.max_joint_velocity.shape != (profile.dof,) or not np.all(self.max_joint_velocity > 0):
            raise ValueError(
                f"max_joint_velocity must be {profile.dof} numbers > 0 (rad/s, one per arm joint), "
                f"got {self.max_joint_velocity.tolist()}"
            )
        self.lower = profile.lower_array
        self.upper = profile.upper_array

    def target_pose(self, current_pose: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The pose ManiSkill's controller aims at: (7,) base frame, before any clamping."""
        dpos, drot = action_to_pose_delta(action[:6])
        rot = Rotation.from_matrix(drot) * _rot(current_pose[3:])
        return np.concatenate([current_pose[:3] + dpos, _quat_wxyz(rot)])

    def clamp_joints(self, q_current: np.ndarray, q_target: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Joint limits, then the per-step limit (shortening the move along its direction)."""
        limited = []
        clipped = np.clip(q_target, self.lower, self.upper)
        if np.any(clipped != q_target):
            limited.append(LIMIT_JOINTS)
        step = clipped - q_current
        biggest = float(np.abs(step).max())
        if biggest > self.max_joint_step:
            clipped = q_current + step * (self.max_joint_step / biggest)
            # q_current itself may sit a hair outside the limits (measurement noise)
            clipped = np.clip(clipped, self.lower, self.upper)
            limited.append(LIMIT_STEP)
        return clipped, limited

    def duration(self, q_current: np.ndarray, q_target: np.ndarray, period: float) -> float:
        """Seconds to give a move from (dof,) ``q_current`` to ``q_target``: at least ``period``,
        longer when a joint would otherwise exceed its velocity limit."""
        needed = np.abs(np.asarray(q_target) - np.asarray(q_current)) / self.max_joint_velocity
        return float(max(period, needed.max()))

    def command(self, q_current: np.ndarray, action: Sequence[float] | np.ndarray) -> ArmCommand:
        """Measured (dof,) arm joints + 7-D action -> safe :class:`ArmCommand`."""
        a = check_action(action)
        q = np.asarray(q_current, dtype=np.float64).reshape(-1)
        if q.shape != (self.profile.dof,) or not np.all(np.isfinite(q)):
            raise ValueError(f"measured joints must be {self.profile.dof} finite numbers, got {q}")
        current = self.kinematics.forward(q)
        target = self.target_pose(current, a)
        limited: list[str] = []
        boxed = np.clip(target[:3], self.workspace_low, self.workspace_high)
        if np.any(boxed != target[:3]):
            target[:3] = boxed
            limited.append(LIMIT_WORKSPACE)
        ik = self.kinematics.inverse(target, q_init=q)
        if ik.converged:
            q_target = ik.q
        else:
            q_target = q.copy()
            limited.append(LIMIT_IK_FAILED)
        q_target, joint_limited = self.clamp_joints(q, q_target)
        return ArmCommand(
            q_target=q_target,
            gripper=self.profile.gripper_command(a[6]),
            current_pose=current,
            target_pose=target,
            limited=tuple(limited + joint_limited),
        )

    def hold(self, q_current: np.ndarray, gripper: float) -> ArmCommand:
        """A command that keeps the arm where it is (e-stop, faults)."""
        q = np.clip(np.asarray(q_current, dtype=np.float64).reshape(-1), self.lower, self.upper)
        pose = self.kinematics.forward(q)
        return ArmCommand(q, float(gripper), pose, pose.copy(), ())
