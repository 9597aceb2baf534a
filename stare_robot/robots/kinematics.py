"""Forward and inverse kinematics of an arm from its URDF, with Pinocchio (through mplib's
``PinocchioModel``, the binding ManiSkill3's motion planner uses).

Inverse kinematics is closed-loop IK (CLIK, damped least squares) with the same settings as
ManiSkill3's CPU ``pd_ee_delta_pose`` controller (eps 1e-4, step 0.1, damping 1e-6, 100 iterations),
so a bridge built on it commands the joints ManiSkill's own controller would.

    kin = Kinematics(get_profile("panda"))
    pose = kin.forward(q)                    # (7,) [xyz, wxyz] of the TCP in the base frame
    result = kin.inverse(pose, q_init=q)     # IKResult(q (7,), converged, error)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stare_robot.robots.profiles import RobotProfile

# ManiSkill3 3.0.1's CPU IK settings (mani_skill/agents/controllers/utils/kinematics.py, sapien's
# PinocchioModel.compute_inverse_kinematics defaults).
IK_EPS = 1e-4
IK_STEP = 0.1
IK_DAMPING = 1e-6
IK_MAX_ITERATIONS = 100


@dataclass(frozen=True)
class IKResult:
    q: np.ndarray  # (dof,) float64 arm joint positions
    converged: bool  # the pose error fell below eps
    error: float  # norm of the remaining SE(3) error (log map, m and rad mixed)


class Kinematics:
    """FK/IK of ``profile``'s arm; finger joints are held (they do not move the TCP)."""

    def __init__(self, profile: RobotProfile, urdf_path: str | Path | None = None):
        from mplib.pymp.kinematics.pinocchio import PinocchioModel  # heavy C++ extension

        self.profile = profile
        self.urdf_path = Path(urdf_path) if urdf_path is not None else profile.urdf_path
        if not self.urdf_path.is_file():
            raise FileNotFoundError(f"robot URDF not found: {self.urdf_path}")
        self._model = PinocchioModel(str(self.urdf_path), np.array([0.0, 0.0, -9.81]), False)
        joints = list(self._model.get_joint_names())
        links = list(self._model.get_link_names())
        wanted = [*profile.arm_joints, *profile.gripper_joints]
        if joints != wanted:
            raise ValueError(
                f"URDF {self.urdf_path} has movable joints {joints}, profile {profile.name!r} "
                f"expects {wanted}"
            )
        if profile.ee_link not in links:
            raise ValueError(f"URDF {self.urdf_path} has no link {profile.ee_link!r}; links: {links}")
        self._ee_index = links.index(profile.ee_link)
        self._n_fingers = len(profile.gripper_joints)
        # mplib's mask: True = joint NOT used by IK (the fingers)
        self._ik_mask = [False] * profile.dof + [True] * self._n_fingers
        limits = self._model.get_joint_limits()
        self.urdf_lower = np.array([lim[0, 0] for lim in limits[: profile.dof]])
        self.urdf_upper = np.array([lim[0, 1] for lim in limits[: profile.dof]])

    def _full(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if q.shape != (self.profile.dof,):
            raise ValueError(f"expected {self.profile.dof} arm joint positions, got shape {q.shape}")
        return np.concatenate([q, np.zeros(self._n_fingers)])

    def forward(self, q: np.ndarray) -> np.ndarray:
        """(dof,) joint positions -> (7,) float64 TCP pose ``[xyz, wxyz]`` in the base frame."""
        self._model.compute_forward_kinematics(self._full(q))
        return np.asarray(self._model.get_link_pose(self._ee_index), dtype=np.float64).copy()

    def inverse(
        self,
        pose: np.ndarray,
        q_init: np.ndarray,
        max_iterations: int = IK_MAX_ITERATIONS,
        eps: float = IK_EPS,
    ) -> IKResult:
        """(7,) base-frame TCP pose -> joint positions, starting the iteration at ``q_init``."""
        pose = np.asarray(pose, dtype=np.float64).reshape(-1)
        if pose.shape != (7,) or not np.all(np.isfinite(pose)):
            raise ValueError(f"pose must be 7 finite numbers [x, y, z, qw, qx, qy, qz], got {pose}")
        pose = pose.copy()
        pose[3:] /= np.linalg.norm(pose[3:])
        q, converged, err = self._model.compute_IK_CLIK(
            self._ee_index, pose, self._full(q_init), self._ik_mask, eps, max_iterations,
            IK_STEP, IK_DAMPING,
        )
        q = np.asarray(q, dtype=np.float64)[: self.profile.dof].copy()
        return IKResult(q=q, converged=bool(converged), error=float(np.linalg.norm(err)))
