"""``robot_bridge``: the policy's 7-D end-effector-delta actions -> joint trajectories.

Subscribes ``action`` (std_msgs/Float64MultiArray, ``[dx, dy, dz, drx, dry, drz, gripper]``,
ManiSkill ``pd_ee_delta_pose`` convention) and ``joint_states``; for each valid action it computes
safe joint targets with :class:`stare_robot.robots.EEDeltaCommander` (IK from the URDF, workspace
box, joint limits, maximum step) and publishes the gripper command, then a one-point
trajectory_msgs/JointTrajectory (what a ros2_control joint trajectory controller takes on
``<controller>/joint_trajectory``) whose ``time_from_start`` keeps every joint under its velocity
limit. Every valid joint state also yields ``ee_pose`` (geometry_msgs/PoseStamped, forward
kinematics, base frame, the joint state's stamp). ``robot`` picks the profile (``panda`` for a
Franka Panda/FR3, ``widowx250s``): joint names, limits, home, workspace, velocity limits.

Safety on the real path:

- no joint state within ``joint_state_timeout_s`` of start-up: the node exits (status 2) naming
  the topic, rather than run blind;
- ``~/home`` (std_srvs/Trigger) moves to the profile's home pose, slowly
  (``home_speed_fraction`` of the velocity limits) - only on request, never by itself;
- ``~/estop`` (std_srvs/SetBool): true = hold where the arm is and ignore actions and home
  requests, false = resume;
- watchdog: no fresh action for ``action_timeout_s`` (0 = off; off in lock-step, where a hold is a
  physics step) after the arm was commanded: one hold at the measured joints, until actions resume.

``mode: observe`` (demonstrations by teleoperation, ``record.launch.py``) never commands the arm:
at the control rate it publishes on ``action`` the EE-delta action that explains the arm's own
motion over the last control period (with the gripper's opening), so the recorder stores what
the operator did in the policy's action space. That action describes the period that *ended* at
its tick: it is paired with the frame after the motion, one step late.

Malformed actions (wrong length, NaN) and joint states lacking a joint are logged and dropped;
nothing is sent to the arm for them.

    robot_bridge --ros-args --params-file launch/config/franka_sim.yaml
"""

from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from stare_robot.robots import (
    ActionError,
    EEDeltaCommander,
    JointStateError,
    Kinematics,
    get_profile,
)
from stare_robot.robots.ee_action import pose_delta_to_action
from stare_robot.robots.profiles import order_joints
from stare_robot_ros import conversions as conv
from stare_robot_ros.node_runner import NodeConfigError, run_node

LOG_THROTTLE_S = 1.0  # repeated warnings of one kind at most once a second
MODES = ("command", "observe")  # observe: teleoperation, actions derived from the arm's motion


class RobotBridgeNode(Node):
    def __init__(self, parameter_overrides=None):
        super().__init__("robot_bridge", parameter_overrides=parameter_overrides)
        robot = self.declare_parameter("robot", "panda").value
        try:
            self.profile = get_profile(robot)
        except ValueError as err:
            raise NodeConfigError(str(err)) from err
        p = self._declare_parameters()
        try:
            self.arm_names = self.profile.ros_arm_joints(p["joint_prefix"])
            self.gripper_joint = self.profile.ros_gripper_joints(p["joint_prefix"])[0]
            gripper_cls = conv.gripper_msg_class(p["gripper_msg_type"])
            kin = Kinematics(self.profile, p["urdf_path"] or None)
            self.commander = EEDeltaCommander(
                self.profile, kin, p["workspace_low"], p["workspace_high"], p["max_joint_step"],
                p["max_joint_velocity"],
            )
        except (ValueError, FileNotFoundError) as err:
            raise NodeConfigError(str(err)) from err
        for name in ("control_rate_hz", "joint_state_timeout_s"):
            if p[name] <= 0:
                raise NodeConfigError(f"{name} must be > 0, got {p[name]}")
        if p["action_timeout_s"] < 0:
            raise NodeConfigError(f"action_timeout_s must be >= 0 (0 = watchdog off), got {p['action_timeout_s']}")
        if not 0 < p["home_speed_fraction"] <= 1:
            raise NodeConfigError(f"home_speed_fraction must be in (0, 1], got {p['home_speed_fraction']}")
        if p["mode"] not in MODES:
            raise NodeConfigError(f"mode {p['mode']!r} is not valid; use one of {MODES}")
        self.p = p
        self.base_frame = p["base_frame"] or self.profile.base_link
        self.period = 1.0 / p["control_rate_hz"]
        self.q: np.ndarray | None = None  # latest valid measured arm joints
        self.finger: float | None = None  # observe mode: latest measured finger position (m)
        self.pose: np.ndarray | None = None  # forward kinematics of self.q
        self.gripper = self.profile.gripper_range[1]  # last commanded finger position (open)
        self.estopped = False
        self._last_warned: dict[str, float] = {}
        self._last_action_at: float | None = None  # monotonic time of the last executed action
        self._watchdog_held = False
        self._observed_pose: np.ndarray | None = None  # observe mode: the pose one period ago

        self.arm_pub = self.create_publisher(JointTrajectory, p["arm_command_topic"], 10)
        self.gripper_pub = self.create_publisher(gripper_cls, p["gripper_command_topic"], 10)
        self.pose_pub = self.create_publisher(PoseStamped, p["ee_pose_topic"], 10)
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joint_state, 10)
        self.create_service(SetBool, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/home", self._on_home)
        if p["mode"] == "observe":
            self.action_pub = self.create_publisher(Float64MultiArray, p["action_topic"], 10)
            self.create_timer(self.period, self._observe_tick)
        else:
            self.create_subscription(Float64MultiArray, p["action_topic"], self._on_action, 10)
            if p["action_timeout_s"] > 0:
                self.create_timer(min(p["action_timeout_s"] / 2, self.period), self._watchdog_tick)
        self._startup_timer = self.create_timer(p["joint_state_timeout_s"], self._check_joint_states)
        self.get_logger().info(f"{self.profile.name} bridge ({p['mode']}), joints {list(self.arm_names)}, "
                               f"waiting for {self.resolve_topic_name(p['joint_states_topic'])}")

    def _declare_parameters(self) -> dict:
        defaults = {  # the robot profile's values unless the params file says otherwise
            "joint_prefix": self.profile.joint_prefix,
            "urdf_path": "",  # "" = the profile's URDF (shipped with ManiSkill3)
            "base_frame": "",  # "" = the profile's base link
            "control_rate_hz": self.profile.control_rate_hz,  # a command is reached within a period
            "workspace_low": [float(v) for v in self.profile.workspace_low],  # base frame, metres
            "workspace_high": [float(v) for v in self.profile.workspace_high],
            "max_joint_step": self.profile.max_joint_step,  # radians per command
            "max_joint_velocity": [float(v) for v in self.profile.max_joint_velocity],  # rad/s
            "mode": "command",  # command | observe (teleoperation: publish the arm's own actions)
            "joint_state_timeout_s": 10.0,  # no joint state by then at start-up: refuse to run
            "action_timeout_s": 0.5,  # watchdog: no fresh action for this long -> hold; 0 = off
            "home_speed_fraction": 0.25,  # of the velocity limits, for ~/home
            "action_topic": "action",
            "joint_states_topic": "joint_states",
            "arm_command_topic": "arm_controller/joint_trajectory",
            "gripper_command_topic": "gripper/command",
            "gripper_msg_type": "float64",
            "ee_pose_topic": "ee_pose",
        }
        return {k: self.declare_parameter(k, v).value for k, v in defaults.items()}

    def _warn(self, text: str) -> None:
        """Warn, at most once per LOG_THROTTLE_S for each kind of problem (the text's start)."""
        kind, now = text[:40], time.monotonic()
        if now - self._last_warned.get(kind, -np.inf) >= LOG_THROTTLE_S:
            self._last_warned[kind] = now
            self.get_logger().warning(text)

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            q = order_joints(msg.name, msg.position, self.arm_names)
        except JointStateError as err:
            self._warn(f"ignored joint state: {err}")
            return
        self.q = q
        if self.p["mode"] == "observe":  # only observe mode reads the fingers
            try:
                self.finger = float(order_joints(msg.name, msg.position, [self.gripper_joint])[0])
            except JointStateError:
                pass  # an arm-only driver: the gripper's opening is then the last command
        self.pose = self.commander.kinematics.forward(q)
        self.pose_pub.publish(conv.pose_stamped_msg(self.pose, self.base_frame, msg.header.stamp))

    def _on_action(self, msg: Float64MultiArray) -> None:
        if self.estopped:
            self._warn("ignored action: e-stop engaged (call ~/estop with false to resume)")
            return
        if self.q is None:
            self._warn("ignored action: no valid joint state received yet")
            return
        try:
            cmd = self.commander.command(self.q, msg.data)
        except ActionError as err:
            self._warn(f"ignored action: {err}")
            return
        if cmd.limited:
            self.get_logger().info(f"command limited by {', '.join(cmd.limited)}", throttle_duration_sec=LOG_THROTTLE_S)
        self._last_action_at = time.monotonic()
        if self._watchdog_held:
            self._watchdog_held = False
            self.get_logger().info("watchdog: actions resumed")
        self._send(cmd.q_target, cmd.gripper, self.commander.duration(self.q, cmd.q_target, self.period))

    def _send(self, q_target: np.ndarray, gripper: float, duration: float) -> None:
        stamp = self.get_clock().now().to_msg()
        self.gripper = gripper
        # gripper first: in lock-step the sim steps once both commands of an action are in
        self.gripper_pub.publish(conv.gripper_msg(self.p["gripper_msg_type"], self.gripper_joint, gripper, stamp))
        self.arm_pub.publish(conv.joint_trajectory_msg(self.arm_names, q_target, duration, stamp))

    def _hold(self) -> None:
        hold = self.commander.hold(self.q, self.gripper)
        self._send(hold.q_target, hold.gripper, self.period)

    # --- safety timers ---
    def _check_joint_states(self) -> None:
        self._startup_timer.cancel()
        if self.q is None:
            topic = self.resolve_topic_name(self.p["joint_states_topic"])
            raise NodeConfigError(
                f"no valid joint state on {topic} within {self.p['joint_state_timeout_s']:g} s "
                f"(joints {list(self.arm_names)}): is the {self.profile.name} driver running? "
                "Refusing to run without joint states"
            )

    def _watchdog_tick(self) -> None:
        if self._last_action_at is None or self._watchdog_held or self.estopped or self.q is None:
            return
        silent = time.monotonic() - self._last_action_at
        if silent > self.p["action_timeout_s"]:
            self._watchdog_held = True
            self._hold()
            self.get_logger().warning(f"watchdog: no action for {silent:.2f} s: holding the arm")

    def _observe_tick(self) -> None:
        if self.pose is None:
            return
        pose = self.pose
        if self._observed_pose is not None:
            finger = self.gripper if self.finger is None else self.finger
            arm = pose_delta_to_action(self._observed_pose, pose)
            action = [*arm.tolist(), self.profile.gripper_action(finger)]
            self.action_pub.publish(Float64MultiArray(data=[float(v) for v in action]))
        self._observed_pose = pose

    def _on_estop(self, request, response):
        self.estopped = bool(request.data)
        if self.estopped and self.q is not None:
            self._hold()
        response.success = True
        response.message = "e-stop engaged: holding" if self.estopped else "e-stop released"
        self.get_logger().warning(response.message)
        return response

    def _on_home(self, request, response):
        if self.estopped:
            response.success, response.message = False, "refused: e-stop engaged (release it first)"
        elif self.q is None:
            response.success, response.message = False, "refused: no valid joint state yet"
        else:
            home = np.asarray(self.profile.home, dtype=np.float64)
            at_full_speed = self.commander.duration(self.q, home, self.period)
            duration = at_full_speed / self.p["home_speed_fraction"]
            self._last_action_at = time.monotonic() + duration  # the watchdog waits for the move
            self._send(home, self.profile.gripper_range[1], duration)
            response.success = True
            response.message = f"moving to the home pose over {duration:.2f} s"
        self.get_logger().warning(f"home: {response.message}")
        return response


def main(args=None) -> int:
    return run_node(RobotBridgeNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
