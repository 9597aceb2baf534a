"""``sim_robot``: a ManiSkill3 task scene that speaks the real robot drivers' interfaces.

``robot`` picks the profile and must be the task's robot: ``panda`` (the Franka tabletop tasks) or
``widowx250s`` (the SimplerEnv-Bridge tasks, e.g. ``PutCarrotOnPlateInScene-v1``, with the
Interbotix joint names and the 640x480 ``3rd_view_camera``; launch/config/widowx_sim.yaml).

Publishes ``joint_states`` (sensor_msgs/JointState, the driver's joint names), and with the camera
on ``camera/image_raw`` + ``camera/camera_info``; takes arm commands as
trajectory_msgs/JointTrajectory (the final point is the joint target) and gripper commands as
std_msgs/Float64 or a JointTrajectory (finger position, metres). Services: ``~/reset``
(std_srvs/Trigger, resets to the ``seed`` parameter — set it first to change seeds) and
``~/success`` (std_srvs/Trigger, success = the task's success predicate now). With ``env_state_topic`` set it
also publishes ManiSkill's flat state vector (std_msgs/Float32MultiArray, right after each joint
state; sim-only, for state-mode policies: no real robot has it).

Two clocks (``clock_mode``):

- ``lockstep``: physics advances one control step per arm command (and, with
  ``lockstep_wait_for_gripper``, once a gripper command has also arrived since the last step).
  Stamps are sim time (steps / control rate), so a subscriber can tell states apart; the
  current state is re-published at ``idle_publish_hz`` without stepping.
- ``realtime``: physics advances one control step per tick of a wall-clock timer at
  ``control_rate_hz`` (each step lasts 1 / control_rate_hz of sim time), holding the last targets.

    sim_robot --ros-args --params-file launch/config/franka_sim.yaml
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float32MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from stare_robot.robots.profiles import JointStateError, get_profile
from stare_robot_ros import conversions as conv
from stare_robot_ros.node_runner import NodeConfigError, run_node

CLOCK_MODES = ("lockstep", "realtime")


class SimRobotNode(Node):
    def __init__(self, parameter_overrides=None):
        super().__init__("sim_robot", parameter_overrides=parameter_overrides)
        p = self._declare_parameters()
        if p["clock_mode"] not in CLOCK_MODES:
            raise NodeConfigError(f"clock_mode {p['clock_mode']!r} is not valid; use one of {CLOCK_MODES}")
        try:
            self.profile = get_profile(p["robot"])
            self.arm_names = self.profile.ros_arm_joints(p["joint_prefix"])
            self.gripper_names = self.profile.ros_gripper_joints(p["joint_prefix"])
            gripper_cls = conv.gripper_msg_class(p["gripper_msg_type"])
        except ValueError as err:
            raise NodeConfigError(str(err)) from err
        self.p = p
        self.lockstep = p["clock_mode"] == "lockstep"

        from stare_robot_ros.joint_sim import JointSim  # ManiSkill: slow import, after validation

        try:
            self.sim = JointSim(
                p["task"], self.profile, camera=p["camera_enabled"], image_size=p["image_size"],
                control_rate_hz=None if self.lockstep else p["control_rate_hz"],
                env_state=bool(p["env_state_topic"]),
            )
        except ValueError as err:
            raise NodeConfigError(str(err)) from err
        self.sim.reset(p["seed"])
        self.q_target = self.sim.joint_positions[: self.profile.dof].copy()
        self.gripper_target: float | None = None
        self._arm_pending = False
        self._gripper_pending = False

        self.joint_pub = self.create_publisher(JointState, p["joint_states_topic"], 10)
        self.image_pub = self.create_publisher(Image, p["image_topic"], qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, p["camera_info_topic"], qos_profile_sensor_data)
        if p["env_state_topic"]:
            self.env_state_pub = self.create_publisher(Float32MultiArray, p["env_state_topic"], 10)
        self.create_subscription(JointTrajectory, p["arm_command_topic"], self._on_arm, 10)
        self.create_subscription(gripper_cls, p["gripper_command_topic"], self._on_gripper, 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(Trigger, "~/success", self._on_success)
        if self.lockstep:
            if p["idle_publish_hz"] > 0:
                self.create_timer(1.0 / p["idle_publish_hz"], self._publish_state)
        else:
            self.create_timer(1.0 / p["control_rate_hz"], self._tick)
        self._publish_state()
        self.get_logger().info(
            f"{p['task']} seed {p['seed']}, {p['clock_mode']} at {self.sim.control_rate_hz:g} Hz, "
            f"joints {list(self.arm_names)}"
        )

    def _declare_parameters(self) -> dict:
        defaults = {
            "robot": "panda",
            "joint_prefix": "panda",
            "task": "PushCube-v1",
            "seed": 0,
            "clock_mode": "realtime",
            "control_rate_hz": 20.0,
            "camera_enabled": True,
            "image_size": 128,
            "camera_frame": "camera_color_optical_frame",
            "lockstep_wait_for_gripper": True,
            "idle_publish_hz": 10.0,
            "joint_states_topic": "joint_states",
            "arm_command_topic": "arm_controller/joint_trajectory",
            "gripper_command_topic": "gripper/command",
            "gripper_msg_type": "float64",
            "image_topic": "camera/image_raw",
            "camera_info_topic": "camera/camera_info",
            "env_state_topic": "",  # "" = off; sim-only privileged state for state-mode policies
        }
        return {k: self.declare_parameter(k, v).value for k, v in defaults.items()}

    # --- commands ---
    def _on_arm(self, msg: JointTrajectory) -> None:
        try:
            q = conv.trajectory_target(msg, self.arm_names)
        except JointStateError as err:
            self.get_logger().warning(f"ignored arm command: {err}")
            return
        lo, hi = self.profile.lower_array, self.profile.upper_array
        if np.any(q < lo) or np.any(q > hi):
            self.get_logger().warning(f"ignored arm command outside joint limits: {q.tolist()}")
            return
        self.q_target = q
        self._arm_pending = True
        self._maybe_lockstep()

    def _on_gripper(self, msg) -> None:
        try:
            self.gripper_target = conv.gripper_command(msg, self.gripper_names[0])
        except JointStateError as err:
            self.get_logger().warning(f"ignored gripper command: {err}")
            return
        self._gripper_pending = True
        self._maybe_lockstep()

    def _maybe_lockstep(self) -> None:
        if not self.lockstep or not self._arm_pending:
            return
        if self.p["lockstep_wait_for_gripper"] and not self._gripper_pending:
            return
        self._arm_pending = self._gripper_pending = False
        self._step()

    def _tick(self) -> None:
        self._step()

    def _step(self) -> None:
        self.sim.step(self.q_target, self.gripper_target)
        self._publish_state()

    # --- state out ---
    def _stamp(self):
        if self.lockstep:  # sim time: lets subscribers tell one step's state from the next
            return conv.time_msg(self.sim.step_count / self.sim.control_rate_hz)
        return self.get_clock().now().to_msg()

    def _publish_state(self) -> None:
        stamp = self._stamp()
        names = [*self.arm_names, *self.gripper_names]
        self.joint_pub.publish(
            conv.joint_state_msg(names, self.sim.joint_positions, self.sim.joint_velocities, stamp)
        )
        env_state = self.sim.env_state
        if env_state is not None:  # after the joint state: the policy client stamps it with that one's
            self.env_state_pub.publish(Float32MultiArray(data=env_state.tolist()))
        rgb = self.sim.image
        if rgb is not None:
            frame = self.p["camera_frame"]
            self.image_pub.publish(conv.image_msg(rgb, frame, stamp))
            self.info_pub.publish(
                conv.camera_info_msg(self.sim.camera_intrinsics, rgb.shape[0], rgb.shape[1], frame, stamp)
            )

    # --- services ---
    def _on_reset(self, request, response):
        seed = int(self.get_parameter("seed").value)
        self.sim.reset(seed)
        self.q_target = self.sim.joint_positions[: self.profile.dof].copy()
        self.gripper_target = None
        self._arm_pending = self._gripper_pending = False
        self._publish_state()
        response.success = True
        response.message = f"reset {self.p['task']} to seed {seed}"
        return response

    def _on_success(self, request, response):
        response.success = self.sim.success
        response.message = f"step {self.sim.step_count}: task {'solved' if response.success else 'not solved'}"
        return response

    def close(self) -> None:
        self.sim.close()


def main(args=None) -> int:
    return run_node(SimRobotNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
