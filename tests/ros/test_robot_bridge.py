"""robot_bridge as its own process: IK commands out, bad input dropped, e-stop holds."""

from __future__ import annotations

import numpy as np
import pytest
from ros_graph import call, probe, spin_for, spin_until, start_node  # noqa: F401  (fixtures)

from stare_robot.robots import EEDeltaCommander, get_profile

pytestmark = pytest.mark.ros

PROFILE = get_profile("panda")
HOME = np.array(PROFILE.home)
NAMES = [*PROFILE.arm_joints, *PROFILE.gripper_joints]


def test_bridge_commands_from_valid_input_only_and_holds_on_estop(probe, start_node):
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    from stare_robot_ros.conversions import joint_state_msg, pose_array, time_msg
    from std_msgs.msg import Float64, Float64MultiArray
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    bridge = start_node("robot_bridge", "franka_sim.yaml")
    arm, grip, poses = [], [], []
    probe.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", arm.append, 10)
    probe.create_subscription(Float64, "gripper/command", grip.append, 10)
    probe.create_subscription(PoseStamped, "ee_pose", poses.append, 10)
    js_pub = probe.create_publisher(JointState, "joint_states", 10)
    act_pub = probe.create_publisher(Float64MultiArray, "action", 10)
    estop = probe.create_client(SetBool, "robot_bridge/estop")

    def joints(q, names=NAMES, stamp=1.0):
        js_pub.publish(joint_state_msg(names, np.r_[q, 0.04, 0.04][: len(names)], np.zeros(len(names)), time_msg(stamp)))

    def act(values):
        act_pub.publish(Float64MultiArray(data=[float(v) for v in values]))

    # a valid joint state -> the FK pose, with the state's stamp and the base frame
    def home_pose_seen():
        joints(HOME)
        return bool(poses)

    spin_until(probe, home_pose_seen, 60, "ee_pose from the bridge", [bridge])
    expected = EEDeltaCommander(PROFILE).kinematics.forward(HOME)
    np.testing.assert_allclose(pose_array(poses[-1]), expected, atol=1e-9)
    assert poses[-1].header.frame_id == "panda_link0" and poses[-1].header.stamp.sec == 1

    # malformed and NaN actions, and a joint state lacking panda_joint4: nothing reaches the arm
    spin_until(probe, lambda: act_pub.get_subscription_count() > 0, 10, "action subscriber")
    bad_q = HOME + 0.3
    joints(np.delete(bad_q, 3), names=[n for n in NAMES if n != "panda_joint4"], stamp=2.0)
    act([0.1] * 6)
    act([0.1, 0, np.nan, 0, 0, 0, 1])
    act([0.1] * 8)
    spin_for(probe, 1.5)
    assert arm == [] and grip == []
    assert [p for p in poses if p.header.stamp.sec == 2] == []  # no pose from the bad state
    log = bridge.log()
    assert "ignored action" in log and "non-finite" in log and "7 values" in log
    assert "lacks joints ['panda_joint4']" in log

    # a valid action is computed from the last *valid* state (HOME), not the bad one
    action = [0.5, 0.0, -0.3, 0.0, 0.0, 0.2, -1.0]
    act(action)
    spin_until(probe, lambda: arm and grip, 10, "arm + gripper command", [bridge])
    want = EEDeltaCommander(PROFILE).command(HOME, action)
    traj = arm[-1]
    assert list(traj.joint_names) == list(PROFILE.arm_joints)
    np.testing.assert_allclose(traj.points[-1].positions, want.q_target, atol=1e-6)
    # one 20 Hz period, stretched so no joint exceeds the Panda's velocity limits
    expected_s = EEDeltaCommander(PROFILE).duration(HOME, want.q_target, 0.05)
    assert expected_s > 0.05  # this move is limited by velocity, not by the period
    took = traj.points[-1].time_from_start
    assert took.sec + took.nanosec * 1e-9 == pytest.approx(expected_s, abs=1e-9)
    assert grip[-1].data == pytest.approx(-0.01)  # closed

    # e-stop: an immediate hold at the measured joints, then actions are ignored until release
    arm.clear()
    reply = call(probe, estop, SetBool.Request(data=True), 10, [bridge])
    assert reply.success and "holding" in reply.message
    spin_until(probe, lambda: arm, 5, "hold command")
    np.testing.assert_allclose(arm[-1].points[-1].positions, HOME, atol=1e-9)
    arm.clear()
    act(action)
    spin_for(probe, 1.0)
    assert arm == []
    assert call(probe, estop, SetBool.Request(data=False), 10, [bridge]).success
    act(action)
    spin_until(probe, lambda: arm, 10, "command after e-stop release", [bridge])

    assert bridge.stop() == 0  # clean shutdown on SIGINT


def test_bridge_rejects_bad_parameters_with_a_clear_message(start_node):
    bridge = start_node("robot_bridge", "franka_sim.yaml", joint_prefix="ur5")
    assert bridge.proc.wait(60) == 2
    assert "joint prefix 'ur5' is not used by robot 'panda'" in bridge.log()
