"""EE-delta action -> safe joint targets (no simulator, no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from stare_robot.robots import (
    ActionError,
    EEDeltaCommander,
    JointStateError,
    get_profile,
    order_joints,
)
from stare_robot.robots.commander import LIMIT_IK_FAILED, LIMIT_JOINTS, LIMIT_STEP, LIMIT_WORKSPACE
from stare_robot.robots.ee_action import pose_distance


@pytest.fixture(scope="module")
def commander():
    return EEDeltaCommander(get_profile("panda"))


HOME = np.array(get_profile("panda").home)


def test_small_action_reaches_the_requested_pose(commander):
    action = np.array([0.3, -0.2, 0.1, 0.2, -0.1, 0.3, 1.0])  # 3 cm / 2 cm / 1 cm, small turn
    cmd = commander.command(HOME, action)
    assert cmd.limited == ()
    reached = commander.kinematics.forward(cmd.q_target)
    dp, dr = pose_distance(reached, cmd.target_pose)
    assert dp < 1e-3 and dr < np.radians(1)
    np.testing.assert_allclose(cmd.target_pose[:3] - cmd.current_pose[:3], [0.03, -0.02, 0.01], atol=1e-9)
    assert cmd.gripper == pytest.approx(0.04)  # +1 = open = the top of the gripper range


def test_gripper_maps_like_maniskill(commander):
    p = commander.profile
    assert commander.command(HOME, [0, 0, 0, 0, 0, 0, -1]).gripper == pytest.approx(-0.01)
    assert commander.command(HOME, [0, 0, 0, 0, 0, 0, 0]).gripper == pytest.approx(0.015)
    assert commander.command(HOME, [0, 0, 0, 0, 0, 0, 5]).gripper == pytest.approx(0.04)  # clipped
    for a in (-1.0, -0.3, 0.0, 0.7, 1.0):
        assert p.gripper_action(p.gripper_command(a)) == pytest.approx(a)


def test_target_outside_workspace_is_clamped_into_the_box():
    profile = get_profile("panda")
    # a box whose top is 2 cm below the home TCP: any target is pulled down into it
    top = profile.workspace_high[2]
    commander = EEDeltaCommander(profile, max_joint_step=1.0, workspace_high=(0.85, 0.5, 0.15))
    cmd = commander.command(HOME, [0, 0, 1.0, 0, 0, 0, 1])  # +10 cm up
    assert LIMIT_WORKSPACE in cmd.limited
    assert cmd.target_pose[2] == pytest.approx(0.15)
    assert commander.kinematics.forward(cmd.q_target)[2] == pytest.approx(0.15, abs=1e-3)
    assert top > 0.15


def test_joint_targets_outside_limits_are_clamped_never_sent(commander):
    lo, hi = commander.lower, commander.upper
    # joint 4 sits just inside its upper limit (-0.0698): a move that bends it further out must stop there
    q = HOME.copy()
    q[3] = hi[3] - 0.01
    for action in ([0.0, 0, -1.0, 0, 0, 0, 1], [1.0, 0, 1.0, 0, 0, 0, 1], [-1, 0, 0, 0, 0, 1, 1]):
        cmd = commander.command(q, action)
        assert np.all(cmd.q_target >= lo) and np.all(cmd.q_target <= hi)
    clamped, limited = commander.clamp_joints(q, q + np.array([0, 0, 0, 0.2, 0, 0, 0]))
    assert LIMIT_JOINTS in limited and clamped[3] == pytest.approx(hi[3])


def test_big_moves_are_shortened_to_the_max_step_along_their_direction(commander):
    step = np.array([0.5, -0.2, 0, 0, 0, 0.1, 0])
    clamped, limited = commander.clamp_joints(HOME, HOME + step)
    assert LIMIT_STEP in limited
    moved = clamped - HOME
    assert np.abs(moved).max() == pytest.approx(commander.max_joint_step)
    np.testing.assert_allclose(moved / np.linalg.norm(moved), step / np.linalg.norm(step), atol=1e-12)


def test_unreachable_target_holds_the_arm(commander):
    # a far-out elbow pose where a 10 cm step outward is beyond reach: IK fails, the arm holds
    q = np.array([0.0, 1.7, 0.0, -0.08, 0.0, 1.8, 0.785])
    cmd = commander.command(q, [1.0, 0, 0, 0, 0, 0, 1])
    assert LIMIT_IK_FAILED in cmd.limited or LIMIT_WORKSPACE in cmd.limited
    if LIMIT_IK_FAILED in cmd.limited:
        np.testing.assert_allclose(cmd.q_target, np.clip(q, commander.lower, commander.upper))


@pytest.mark.parametrize(
    "action, match",
    [([0.1] * 6, "7 values"), ([0.1] * 8, "7 values"), ([0, 0, np.nan, 0, 0, 0, 1], "non-finite"),
     ([0, 0, 0, np.inf, 0, 0, 1], "non-finite")],
)
def test_malformed_actions_raise(commander, action, match):
    with pytest.raises(ActionError, match=match):
        commander.command(HOME, action)


def test_order_joints_rejects_incomplete_or_bad_states():
    names = [f"panda_joint{i}" for i in range(1, 8)]
    shuffled = names[::-1] + ["panda_finger_joint1"]
    out = order_joints(shuffled, list(range(8)), names)
    np.testing.assert_array_equal(out, [6, 5, 4, 3, 2, 1, 0])
    with pytest.raises(JointStateError, match="lacks joints \\['panda_joint4'\\]"):
        order_joints([n for n in names if n != "panda_joint4"], [0.0] * 6, names)
    with pytest.raises(JointStateError, match="names but"):
        order_joints(names, [0.0] * 6, names)
    with pytest.raises(JointStateError, match="non-finite"):
        order_joints(names, [0.0] * 6 + [float("nan")], names)
    with pytest.raises(JointStateError, match="twice"):
        order_joints(names + ["panda_joint1"], [0.0] * 8, names)
