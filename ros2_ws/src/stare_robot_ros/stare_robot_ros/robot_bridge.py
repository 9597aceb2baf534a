"""``robot_bridge``: the policy's 7-D end-effector-delta actions -> joint trajectories.

Subscribes ``action`` (std_msgs/Float64MultiArray, ``[dx, dy, dz, drx, dry, drz, gripper]``,
ManiSkill ``pd_ee_delta_pose`` convention) and ``joint_states``; for each valid action it computes
safe joint targets with :class:`stare_robot.robots.EEDeltaCommander` (IK from the URDF, workspace
box, joint limits, maximum step) and publishes the gripper command, then a one-point
trajectory_msgs/JointTrajectory. Every valid joint state also yields ``ee_pose``
(geometry_msgs/PoseStamped, forward kinematics, base frame, the joint state's stamp).
``~/estop`` (std_srvs/SetBool): true = hold where the arm is and ignore actions, false = resume.

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
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from stare_robot.robots import ActionError, EEDeltaCommander, JointStateError, Kinematics, get_profile
from stare_robot.robots.profiles import order_joints
from stare_robot_ros import conversions as conv
from stare_robot_ros.node_runner import NodeConfigError, run_node

LOG_THROTTLE_S = 1.0  # repeated warnings of one kind at most once a second


class RobotBridgeNode(Node):
    def __init__(self):
        super().__init__("robot_bridge")
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
                self.profile, kin, p["workspace_low"], p["workspace_high"], p["max_joint_step"]
            )
        except (ValueError, FileNotFoundError) as err:
            raise NodeConfigError(str(err)) from err
        if p["control_rate_hz"] <= 0:
            raise NodeConfigError(f"control_rate_hz must be > 0, got {p['control_rate_hz']}")
        self.p = p
        self.base_frame = p["base_frame"] or self.profile.base_link
        self.q: np.ndarray | None = None  # latest valid measured arm joints
        self.gripper = self.profile.gripper_range[1]  # last commanded finger position (open)
        self.estopped = False
        self._last_warned: dict[str, float] = {}

        self.arm_pub = self.create_publisher(JointTrajectory, p["arm_command_topic"], 10)
        self.gripper_pub = self.create_publisher(gripper_cls, p["gripper_command_topic"], 10)
        self.pose_pub = self.create_publisher(PoseStamped, p["ee_pose_topic"], 10)
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joint_state, 10)
        self.create_subscription(Float64MultiArray, p["action_topic"], self._on_action, 10)
        self.create_service(SetBool, "~/estop", self._on_estop)
        self.get_logger().info(f"{self.profile.name} bridge, joints {list(self.arm_names)}")

    def _declare_parameters(self) -> dict:
        defaults = {  # the robot profile's values unless the params file says otherwise
            "joint_prefix": self.profile.joint_prefix,
            "urdf_path": "",  # "" = the profile's URDF (shipped with ManiSkill3)
            "base_frame": "",  # "" = the profile's base link
            "control_rate_hz": self.profile.control_rate_hz,  # a command is reached within a period
            "workspace_low": [float(v) for v in self.profile.workspace_low],  # base frame, metres
            "workspace_high": [float(v) for v in self.profile.workspace_high],
            "max_joint_step": self.profile.max_joint_step,  # radians per command
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
        pose = self.commander.kinematics.forward(q)
        self.pose_pub.publish(conv.pose_stamped_msg(pose, self.base_frame, msg.header.stamp))

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
        self._send(cmd.q_target, cmd.gripper)

    def _send(self, q_target: np.ndarray, gripper: float) -> None:
        stamp = self.get_clock().now().to_msg()
        self.gripper = gripper
        # gripper first: in lock-step the sim steps once both commands of an action are in
        self.gripper_pub.publish(conv.gripper_msg(self.p["gripper_msg_type"], self.gripper_joint, gripper, stamp))
        self.arm_pub.publish(
            conv.joint_trajectory_msg(self.arm_names, q_target, 1.0 / self.p["control_rate_hz"], stamp)
        )

    def _on_estop(self, request, response):
        self.estopped = bool(request.data)
        if self.estopped and self.q is not None:
            hold = self.commander.hold(self.q, self.gripper)
            self._send(hold.q_target, hold.gripper)
        response.success = True
        response.message = "e-stop engaged: holding" if self.estopped else "e-stop released"
        self.get_logger().warning(response.message)
        return response


def main(args=None) -> int:
    return run_node(RobotBridgeNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
