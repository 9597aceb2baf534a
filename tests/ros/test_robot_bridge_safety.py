"""robot_bridge's real-path safety, as its own process configured by launch/config/widowx.yaml
(the real WidowX params file, loaded by the real node): refuses to run without joint states,
moves home only on request and within the velocity limits, watchdog hold, e-stop, and the
teleoperation (observe) mode that never commands the arm."""

from __future__ import annotations

import numpy as np
import pytest
from ros_graph import call, probe, spin_for, spin_until, start_node  # noqa: F401  (fixtures)

from stare_robot.robots import EEDeltaCommander, Kinematics, get_profile
from stare_robot.robots.ee_action import pose_delta_to_action

pytestmark = pytest.mark.ros

PARAMS = "widowx.yaml"
PROFILE = get_profile("widowx250s")
NAMES = [*PROFILE.arm_joints, "gripper", *PROFILE.gripper_joints]  # as Interbotix publishes them
ARM_TOPIC = "/wx250s/arm_controller/joint_trajectory"  # what widowx.yaml names
GRIPPER_TOPIC = "/wx250s/gripper_controller/joint_trajectory"
JOINTS_TOPIC = "/wx250s/joint_states"
Q0 = np.array(PROFILE.home) + np.array([0.6, -0.4, 0.5, 0.0, -0.6, 0.2])  # far enough for the
# velocity limits, not the control period, to set how long the move home takes


@pytest.fixture
def bridge_env(bridge_assets):
    # bridge_assets sets MS_ASSET_DIR, which the node processes inherit
    return Kinematics(PROFILE, bridge_assets / "data/robots/widowx/wx250s.urdf")


def _seconds(duration) -> float:
    return duration.sec + duration.nanosec * 1e-9


def test_bridge_refuses_to_start_without_joint_states(bridge_env, start_node):
    bridge = start_node("robot_bridge", PARAMS, joint_state_timeout_s=2.0)
    assert bridge.proc.wait(90) == 2
    log = bridge.log()
    assert f"no valid joint state on {JOINTS_TOPIC} within 2 s" in log
    assert "is the widowx250s driver running" in log and "Refusing to run" in log


def test_widowx_bridge_homes_on_request_only_holds_on_watchdog_and_estop(bridge_env, probe, start_node):
    from rcl_interfaces.srv import GetParameters
    from sensor_msgs.msg import JointState
    from stare_robot_ros.conversions import joint_state_msg, time_msg
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool, Trigger
    from trajectory_msgs.msg import JointTrajectory

    bridge = start_node("robot_bridge", PARAMS)
    arm, grip = [], []
    probe.create_subscription(JointTrajectory, ARM_TOPIC, arm.append, 10)
    probe.create_subscription(JointTrajectory, GRIPPER_TOPIC, grip.append, 10)
    js_pub = probe.create_publisher(JointState, JOINTS_TOPIC, 10)
    act_pub = probe.create_publisher(Float64MultiArray, "action", 10)
    home = probe.create_client(Trigger, "robot_bridge/home")
    estop = probe.create_client(SetBool, "robot_bridge/estop")
    params = probe.create_client(GetParameters, "robot_bridge/get_parameters")

    def joints():
        js_pub.publish(joint_state_msg(NAMES, np.r_[Q0, 0.0, 0.03, 0.03], np.zeros(len(NAMES)), time_msg(1.0)))

    probe.create_timer(0.05, joints)
    # the values in widowx.yaml are the node's
    reply = call(probe, params, GetParameters.Request(
        names=["robot", "control_rate_hz", "workspace_high", "action_timeout_s", "gripper_msg_type"]), 60, [bridge])
    values = reply.values
    assert values[0].string_value == "widowx250s" and values[1].double_value == 5.0
    assert list(values[2].double_array_value) == [0.5, 0.35, 0.4] and values[3].double_value == 1.0
    assert values[4].string_value == "joint_trajectory"

    spin_for(probe, 2.5)  # joint states flowing, no action, no request: the arm is left alone
    assert arm == [] and grip == []

    answer = call(probe, home, Trigger.Request(), 10, [bridge])
    assert answer.success, answer.message
    spin_until(probe, lambda: arm and grip, 10, "the home trajectory", [bridge])
    point = arm[-1].points[-1]
    assert list(arm[-1].joint_names) == list(PROFILE.arm_joints)
    np.testing.assert_allclose(point.positions, PROFILE.home, atol=1e-9)
    slowest = np.max(np.abs(np.array(PROFILE.home) - Q0) / np.array(PROFILE.max_joint_velocity))
    assert slowest > 1 / 5.0
    assert _seconds(point.time_from_start) == pytest.approx(slowest / 0.25, rel=1e-6)  # yaml: 0.25
    assert list(grip[-1].joint_names) == ["left_finger"]
    assert grip[-1].points[-1].positions[0] == pytest.approx(0.037)  # opened

    # one action, then silence: after action_timeout_s (1 s) exactly one hold at the measured joints
    arm.clear()
    spin_until(probe, lambda: act_pub.get_subscription_count() > 0, 10, "action subscriber")
    act_pub.publish(Float64MultiArray(data=[0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))
    spin_until(probe, lambda: len(arm) >= 1, 10, "the action's command", [bridge])
    want = EEDeltaCommander(PROFILE, bridge_env).command(Q0, [0.1, 0, 0, 0, 0, 0, 1.0])
    np.testing.assert_allclose(arm[0].points[-1].positions, want.q_target, atol=1e-6)
    spin_until(probe, lambda: len(arm) >= 2, 10, "the watchdog's hold", [bridge])
    np.testing.assert_allclose(arm[1].points[-1].positions, Q0, atol=1e-9)
    spin_for(probe, 2.5)
    assert len(arm) == 2, "the watchdog holds once per silence, not every tick"
    assert "watchdog: no action for" in bridge.log()

    # e-stop: hold now, then refuse home and ignore actions until released
    reply = call(probe, estop, SetBool.Request(data=True), 10, [bridge])
    assert reply.success
    spin_until(probe, lambda: len(arm) >= 3, 10, "the e-stop hold", [bridge])
    answer = call(probe, home, Trigger.Request(), 10, [bridge])
    assert not answer.success and "e-stop" in answer.message
    act_pub.publish(Float64MultiArray(data=[0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))
    spin_for(probe, 1.0)
    assert len(arm) == 3
    assert bridge.stop() == 0


def test_observe_mode_publishes_the_arms_own_motion_as_actions_and_never_commands(bridge_env, probe, start_node):
    from sensor_msgs.msg import JointState
    from stare_robot_ros.conversions import joint_state_msg, time_msg
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory

    bridge = start_node("robot_bridge", PARAMS, mode="observe")
    arm, actions = [], []
    probe.create_subscription(JointTrajectory, ARM_TOPIC, arm.append, 10)
    probe.create_subscription(JointTrajectory, GRIPPER_TOPIC, arm.append, 10)
    probe.create_subscription(Float64MultiArray, "action", lambda m: actions.append(np.array(m.data)), 50)
    js_pub = probe.create_publisher(JointState, JOINTS_TOPIC, 10)
    q_b = Q0 + np.array([0.05, 0.04, -0.03, 0.0, 0.02, 0.05])  # the operator moves the arm once
    state = {"q": Q0, "finger": 0.037}

    def joints():
        f = state["finger"]
        js_pub.publish(joint_state_msg(NAMES, np.r_[state["q"], 0.0, f, f], np.zeros(len(NAMES)), time_msg(1.0)))

    probe.create_timer(0.02, joints)
    spin_until(probe, lambda: len(actions) >= 3, 60, "observed actions at rest", [bridge])
    state["q"], state["finger"] = q_b, 0.015  # moved and closed the gripper
    n = len(actions)
    spin_until(probe, lambda: len(actions) >= n + 4, 30, "observed actions after the move", [bridge])
    arm_moves = [a for a in actions if np.abs(a[:6]).max() > 1e-6]
    assert len(arm_moves) == 1, "one control period saw the move; the others saw the arm at rest"
    expected = pose_delta_to_action(bridge_env.forward(Q0), bridge_env.forward(q_b))
    np.testing.assert_allclose(arm_moves[0][:6], expected, atol=1e-5)
    assert actions[0][6] == pytest.approx(1.0) and actions[-1][6] == pytest.approx(-1.0)  # open, closed
    assert arm == []  # observe mode never commands the arm or the gripper
    assert bridge.stop() == 0


def test_every_gripper_interface_carries_the_finger_command_both_ways():
    from stare_robot_ros import conversions as conv
    from std_msgs.msg import Float64MultiArray

    from stare_robot.robots.profiles import JointStateError

    for kind in conv.GRIPPER_MSG_TYPES:  # float64, joint_trajectory, float64_array
        msg = conv.gripper_msg(kind, "left_finger", 0.021, conv.time_msg(0.0))
        assert isinstance(msg, conv.gripper_msg_class(kind))
        assert conv.gripper_command(msg, "left_finger") == pytest.approx(0.021)
    with pytest.raises(JointStateError, match="must hold 1 value, got 2"):
        conv.gripper_command(Float64MultiArray(data=[0.02, 0.02]), "left_finger")
    with pytest.raises(ValueError, match="gripper_msg_type 'action' is not valid"):
        conv.gripper_msg_class("action")
