"""Both robot profiles (WidowX 250s and Franka Panda): limits as in their URDFs, home pose within
limits and workspace, FK/IK round trips, and the commander's clamps and velocity-limited timing.
The WidowX URDF comes from the shared ManiSkill asset pack, unpacked to a temporary folder."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from stare_robot.robots import EEDeltaCommander, Kinematics, get_profile
from stare_robot.robots.commander import LIMIT_JOINTS, LIMIT_STEP, LIMIT_WORKSPACE
from stare_robot.robots.ee_action import pose_distance
from stare_robot.robots.profiles import UnknownRobotError

URDF_IN_ASSETS = "data/robots/widowx/wx250s.urdf"


@pytest.fixture(scope="module", params=["widowx250s", "panda"])
def kin(request, bridge_assets):
    profile = get_profile(request.param)
    if profile.name == "widowx250s":
        return Kinematics(profile, bridge_assets / URDF_IN_ASSETS)
    return Kinematics(profile)


def test_the_widowx_profile_names_the_interbotix_joints_and_finds_its_urdf(bridge_assets, monkeypatch):
    p = get_profile("widowx250s")
    assert p.dof == 6
    assert p.ros_arm_joints("") == ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
    assert p.ros_gripper_joints() == ("left_finger", "right_finger")
    with pytest.raises(UnknownRobotError, match="joint prefix 'wx250s' is not used by robot 'widowx250s'"):
        p.ros_arm_joints("wx250s")
    # ManiSkill's asset dir convention: $MS_ASSET_DIR/data/robots/widowx/wx250s.urdf
    monkeypatch.setenv("MS_ASSET_DIR", str(bridge_assets))
    assert p.urdf_path == bridge_assets / "data/robots/widowx/wx250s.urdf"
    monkeypatch.setenv("MS_ASSET_DIR", str(bridge_assets / "nowhere"))
    with pytest.raises(FileNotFoundError, match="download_asset widowx250s.*MS_ASSET_DIR"):
        _ = p.urdf_path
    # the gripper maps -1 .. +1 onto the finger range (metres), closed .. open
    assert p.gripper_command(-1.0) == pytest.approx(0.015)
    assert p.gripper_command(1.0) == pytest.approx(0.037)


def test_limits_match_the_urdf_and_home_is_inside_limits_and_workspace(kin):
    p = kin.profile
    np.testing.assert_allclose(p.lower_array, kin.urdf_lower, atol=1e-6)
    np.testing.assert_allclose(p.upper_array, kin.urdf_upper, atol=1e-6)
    home = np.array(p.home)
    assert home.shape == (p.dof,) and np.all(p.lower_array < home) and np.all(home < p.upper_array)
    tcp = kin.forward(home)[:3]
    assert np.all(np.array(p.workspace_low) < tcp) and np.all(tcp < np.array(p.workspace_high))
    assert len(p.max_joint_velocity) == p.dof and min(p.max_joint_velocity) > 0


def test_the_first_joint_turns_the_tcp_about_the_vertical_axis(kin):
    home = np.array(kin.profile.home)
    turned = home.copy()
    turned[0] += 0.4
    np.testing.assert_allclose(kin.forward(turned)[:3],
                               Rotation.from_euler("z", 0.4).apply(kin.forward(home)[:3]), atol=1e-9)


def test_inverse_of_forward_round_trips_within_1mm_and_1deg(kin):
    rng = np.random.default_rng(0)
    p = kin.profile
    home = np.array(p.home)
    worst_mm = worst_deg = 0.0
    for _ in range(25):
        q = np.clip(home + rng.uniform(-0.4, 0.4, p.dof), p.lower_array, p.upper_array)
        target = kin.forward(q)
        result = kin.inverse(target, q_init=q + rng.uniform(-0.05, 0.05, p.dof), max_iterations=1000)
        assert result.converged, f"{p.name}: IK did not converge for q={q}"
        dp, dr = pose_distance(kin.forward(result.q), target)
        worst_mm, worst_deg = max(worst_mm, dp * 1e3), max(worst_deg, np.degrees(dr))
    assert worst_mm < 1.0 and worst_deg < 1.0, (p.name, worst_mm, worst_deg)


def test_commands_are_clamped_to_workspace_joint_limits_and_step(kin):
    p = kin.profile
    cmd = EEDeltaCommander(p, kin)
    home = np.array(p.home)
    # up by a full action (0.1 m) from home: past the profile's box it is capped at its top, and
    # under a box 2 cm above home it stops 2 cm up
    high = np.array(p.workspace_high)
    tcp = kin.forward(home)
    assert cmd.command(home, [0, 0, 1.0, 0, 0, 0, 1]).target_pose[2] <= high[2]
    low_box = EEDeltaCommander(p, kin, workspace_low=p.workspace_low,
                               workspace_high=[high[0], high[1], tcp[2] + 0.02])
    out = low_box.command(home, [0, 0, 1.0, 0, 0, 0, 1])
    assert LIMIT_WORKSPACE in out.limited and out.target_pose[2] == pytest.approx(tcp[2] + 0.02)
    assert kin.forward(out.q_target)[2] == pytest.approx(tcp[2] + 0.02, abs=1e-3)
    # joint limits, then the step: a far target past the upper limits is cut to both
    far = p.upper_array + 1.0
    clamped, limited = cmd.clamp_joints(home, far)
    assert limited == [LIMIT_JOINTS, LIMIT_STEP]
    assert np.all(clamped <= p.upper_array) and np.abs(clamped - home).max() == pytest.approx(p.max_joint_step)
    step = clamped - home
    direction = (np.minimum(far, p.upper_array) - home)
    np.testing.assert_allclose(step / np.linalg.norm(step), direction / np.linalg.norm(direction), atol=1e-9)


def test_a_move_lasts_long_enough_for_every_joint_to_stay_under_its_velocity_limit(kin):
    p = kin.profile
    cmd = EEDeltaCommander(p, kin)
    home = np.array(p.home)
    period = 1.0 / p.control_rate_hz
    assert cmd.duration(home, home, period) == period  # a hold takes one period
    target = home.copy()
    target[-1] += 0.3  # the wrist's limit is the binding one
    expected = 0.3 / p.max_joint_velocity[-1]
    assert cmd.duration(home, target, period) == pytest.approx(max(period, expected))
    slow = EEDeltaCommander(p, kin, max_joint_velocity=[0.1] * p.dof)
    assert slow.duration(home, target, period) == pytest.approx(3.0)
    with pytest.raises(ValueError, match=f"max_joint_velocity must be {p.dof} numbers > 0"):
        EEDeltaCommander(p, kin, max_joint_velocity=[1.0] * (p.dof + 1))
