"""``episode_recorder``: the graph's images, joint states, end-effector pose, gripper and actions ->
one Zarr episode per start/stop, with online gripper keyframes and motion/skill stages.

Services: ``~/start`` and ``~/stop`` (std_srvs/Trigger; stop commits the episode atomically and
answers with its id and the dropped-frame count), ``~/label`` (std_srvs/SetBool: the episode's
success). A frame is taken on each ``frame_topic`` message (``ee_pose``: the bridge's pose, which
carries its joint state's stamp, so pose and joints are exactly paired; ``image``; or
``joint_states``) with the newest of the other inputs. Writing happens on the library recorder's
thread (:class:`stare_robot.deploy.EpisodeRecorder`), never in a callback; frames it cannot keep up
with are dropped and counted (``~/status``, std_msgs/String JSON).

    episode_recorder --ros-args --params-file launch/config/franka_sim.yaml -p store_path:=data/robot.zarr
"""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from stare_robot import keys
from stare_robot.deploy import EpisodeRecorder, RecorderError
from stare_robot.robots.profiles import JointStateError, get_profile, order_joints
from stare_robot_ros import conversions as conv
from stare_robot_ros.node_runner import NodeConfigError, run_node
from stare_robot_ros.policy_client import image_array

FRAME_TOPICS = ("ee_pose", "image", "joint_states")
JOINT_CACHE = 32  # joint states kept by stamp, to pair with the pose computed from them


class EpisodeRecorderNode(Node):
    def __init__(self):
        super().__init__("episode_recorder")
        p = self._declare_parameters()
        if p["frame_topic"] not in FRAME_TOPICS:
            raise NodeConfigError(f"frame_topic {p['frame_topic']!r} is not valid; use one of {FRAME_TOPICS}")
        if not p["store_path"]:
            raise NodeConfigError("store_path is required (the Zarr episode store to record into)")
        if p["frame_topic"] == "image" and not p["image_topic"]:
            raise NodeConfigError("frame_topic 'image' needs an image_topic")
        try:
            self.profile = get_profile(p["robot"])
            self.joint_names = [*self.profile.ros_arm_joints(p["joint_prefix"]),
                                *self.profile.ros_gripper_joints(p["joint_prefix"])]
            self.recorder = EpisodeRecorder(
                p["store_path"], store_attrs={keys.ATTR_ROBOT: p["robot"]},
                stage_family=p["stage_family"], max_queue=p["max_queue"])
        except ValueError as err:
            raise NodeConfigError(str(err)) from err
        self.p = p
        self.rgb_key = keys.obs_rgb(p["camera_name"])
        self._joints: OrderedDict[float, dict] = OrderedDict()  # stamp -> arrays
        self._image: np.ndarray | None = None
        self._pose: np.ndarray | None = None
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joints, 50)
        self.create_subscription(PoseStamped, p["ee_pose_topic"], self._on_pose, 50)
        self.create_subscription(Float64MultiArray, p["action_topic"], self._on_action, 50)
        if p["image_topic"]:
            self.create_subscription(Image, p["image_topic"], self._on_image, qos_profile_sensor_data)
        self.create_service(Trigger, "~/start", self._on_start)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self.create_service(SetBool, "~/label", self._on_label)
        self.get_logger().info(f"recording into {p['store_path']} on {p['frame_topic']} messages")

    def _declare_parameters(self) -> dict:
        defaults = {
            "robot": "panda",
            "joint_prefix": "panda",
            "store_path": "",
            "task": "",
            "instruction": "",
            "source": "sim",  # sim | real (episode attr)
            "control_rate_hz": 20.0,
            "stage_family": "gripper",  # object-free stages: works on a real robot
            "frame_topic": "ee_pose",
            "max_queue": 256,  # frames buffered for the writer before dropping
            "camera_name": "base_camera",
            "image_topic": "camera/image_raw",  # "" = record no images
            "joint_states_topic": "joint_states",
            "ee_pose_topic": "ee_pose",
            "action_topic": "action",
        }
        return {k: self.declare_parameter(k, v).value for k, v in defaults.items()}

    # --- inputs ---
    def _on_joints(self, msg: JointState) -> None:
        try:
            q = order_joints(msg.name, msg.position, self.joint_names).astype(np.float32)
            v = (order_joints(msg.name, msg.velocity, self.joint_names).astype(np.float32)
                 if msg.velocity else np.zeros_like(q))
        except JointStateError as err:
            self.get_logger().warning(f"ignored joint state: {err}", throttle_duration_sec=1.0)
            return
        opening = np.clip(q[-2:].sum() / (2 * self.profile.finger_open_width), 0.0, 1.0)
        arrays = {keys.OBS_STATE: np.concatenate([q, v]), keys.OBS_JOINT_POS: q,
                  keys.OBS_GRIPPER: np.array([opening], np.float32)}
        stamp = conv.time_seconds(msg.header.stamp)
        self._joints[stamp] = arrays
        while len(self._joints) > JOINT_CACHE:
            self._joints.popitem(last=False)
        if self.p["frame_topic"] == "joint_states":
            self._frame(stamp, arrays)

    def _on_pose(self, msg: PoseStamped) -> None:
        self._pose = conv.pose_array(msg).astype(np.float32)
        if self.p["frame_topic"] == "ee_pose":
            stamp = conv.time_seconds(msg.header.stamp)
            joints = self._joints.get(stamp)
            if joints is not None:  # the joint state this pose was computed from
                self._frame(stamp, joints)

    def _on_image(self, msg: Image) -> None:
        try:
            self._image = image_array(msg)
        except ValueError as err:
            self.get_logger().warning(f"ignored image: {err}", throttle_duration_sec=1.0)
            return
        if self.p["frame_topic"] == "image" and self._joints:
            self._frame(conv.time_seconds(msg.header.stamp), next(reversed(self._joints.values())))

    def _on_action(self, msg: Float64MultiArray) -> None:
        self.recorder.add_action(np.asarray(msg.data, np.float64))

    def _frame(self, stamp: float, joints: dict) -> None:
        if not self.recorder.recording:
            return
        arrays = dict(joints)
        arrays[keys.OBS_EE_POSE] = self._pose if self._pose is not None else np.full(7, np.nan, np.float32)
        if self.p["image_topic"]:
            if self._image is None:
                return  # no image yet: the first frame must have every array
            arrays[self.rgb_key] = self._image
        self.recorder.add_frame(stamp, arrays)

    # --- services ---
    def _on_start(self, request, response):
        p = self.p
        attrs = {keys.ATTR_TASK: p["task"], keys.ATTR_INSTRUCTION: p["instruction"],
                 keys.ATTR_ROBOT: p["robot"], keys.ATTR_SOURCE: p["source"],
                 keys.ATTR_CONTROL_RATE: float(p["control_rate_hz"]),
                 keys.ATTR_ACTION_SPACE: keys.ACTION_SPACE_EE_DELTA}
        try:
            self.recorder.start(attrs)
        except RecorderError as err:
            response.success, response.message = False, str(err)
            return response
        response.success, response.message = True, "recording"
        self.get_logger().info("recording started")
        return response

    def _on_stop(self, request, response):
        try:
            episode = self.recorder.stop()
        except RecorderError as err:
            response.success, response.message = False, str(err)
            self.get_logger().error(str(err))
            return response
        r = self.recorder
        report = {"episode_id": episode, "frames": r.written, "dropped": r.dropped,
                  "keyframes": list(r.tracker.keyframes)}
        if r.dropped:
            self.get_logger().warning(f"dropped {r.dropped} of {r.received} frames (writer too slow)")
        self.status_pub.publish(String(data=json.dumps(report)))
        response.success = episode is not None
        response.message = json.dumps(report)
        return response

    def _on_label(self, request, response):
        try:
            self.recorder.label(bool(request.data))
        except RecorderError as err:
            response.success, response.message = False, str(err)
            return response
        response.success, response.message = True, f"success = {bool(request.data)}"
        return response

    def close(self) -> None:
        if self.recorder.recording:  # an unfinished episode is never committed
            self.recorder.discard()


def main(args=None) -> int:
    return run_node(EpisodeRecorderNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
