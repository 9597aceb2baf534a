"""FK/IK of the Panda profile from its URDF (no simulator, no ROS)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from stare_robot.robots import Kinematics, get_profile
from stare_robot.robots.ee_action import pose_distance
from stare_robot.robots.profiles import UnknownRobotError


@pytest.fixture(scope="module")
def kin():
    return Kinematics(get_profile("panda"))


def _pose(pos, rot: Rotation) -> np.ndarray:
    x, y, z, w = rot.as_quat()
    return np.array([*pos, w, x, y, z])


def test_profile_limits_match_the_urdf(kin):
    p = kin.profile
    np.testing.assert_allclose(p.lower_array, kin.urdf_lower, atol=1e-6)
    np.testing.assert_allclose(p.upper_array, kin.urdf_upper, atol=1e-6)
    assert np.all(p.lower_array < p.home) and np.all(p.home < p.upper_array)


def test_forward_kinematics_is_a_proper_pose_and_moves_with_joint1(kin):
    q = np.array(kin.profile.home)
    pose = kin.forward(q)
    assert abs(np.linalg.norm(pose[3:]) - 1) < 1e-9
    # joint 1 is the vertical base axis: turning it rotates the TCP about z through the origin
    q2 = q.copy()
    q2[0] += 0.3
    moved = kin.forward(q2)
    expected = Rotation.from_euler("z", 0.3).apply(pose[:3])
    np.testing.assert_allclose(moved[:3], expected, atol=1e-9)


def test_forward_of_inverse_is_within_1mm_1deg_over_a_grid(kin):
    home = np.array(kin.profile.home)
    down = Rotation.from_euler("x", np.pi)  # gripper pointing at the table
    worst_mm, worst_deg, count = 0.0, 0.0, 0
    for x, y, z, yaw, tilt in itertools.product(
        (0.35, 0.5, 0.6), (-0.2, 0.0, 0.2), (0.05, 0.2, 0.35), (-0.6, 0.0, 0.6), (0.0, 0.3)
    ):
        target = _pose((x, y, z), Rotation.from_euler("zy", [yaw, tilt]) * down)
        result = kin.inverse(target, q_init=home, max_iterations=1000)
        assert result.converged, f"IK did not converge for {target}"
        dp, dr = pose_distance(kin.forward(result.q), target)
        worst_mm, worst_deg = max(worst_mm, dp * 1e3), max(worst_deg, np.degrees(dr))
        count += 1
    assert count == 162
    assert worst_mm < 1.0 and worst_deg < 1.0, (worst_mm, worst_deg)


def test_inverse_reports_unreachable_pose_as_not_converged(kin):
    far = _pose((2.0, 0.0, 0.3), Rotation.from_euler("x", np.pi))  # 2 m away: beyond reach
    assert not kin.inverse(far, q_init=np.array(kin.profile.home)).converged


def test_bad_inputs_raise_clear_errors(kin):
    with pytest.raises(ValueError, match="7 arm joint positions"):
        kin.forward(np.zeros(6))
    with pytest.raises(ValueError, match="7 finite numbers"):
        kin.inverse(np.array([0.5, 0, 0.2, np.nan, 0, 0, 0]), np.array(kin.profile.home))
    with pytest.raises(UnknownRobotError, match="Did you mean 'panda'"):
        get_profile("pandaa")
    with pytest.raises(UnknownRobotError, match="valid: panda, fr3"):
        kin.profile.ros_arm_joints("ur5")


def test_ros_joint_names_follow_the_driver_prefix():
    p = get_profile("panda")
    assert p.ros_arm_joints("fr3") == tuple(f"fr3_joint{i}" for i in range(1, 8))
    assert p.ros_gripper_joints("fr3") == ("fr3_finger_joint1", "fr3_finger_joint2")
    assert p.ros_arm_joints() == p.arm_joints
