"""``episode_recorder``: the graph's images, joint states, end-effector pose, gripper and actions ->
one Zarr episode per start/stop, with online gripper keyframes and motion/skill stages.

Services: ``~/start`` and ``~/stop`` (std_srvs/Trigger; stop commits the episode atomically and
answers with its id and the dropped-frame count), ``~/label`` (std_srvs/SetBool: the episode's
success). A frame is taken on each ``frame_topic`` message (``ee_pose``: the bridge's pose, which
carries its joint state's stamp; ``image``; or ``joint_states``) together with the joint state and
image nearest to it in header stamp (within ``max_stamp_skew_s``; the frame waits for them if they
are late, :class:`stare_robot.deploy.pairing.StampMatcher`) and the nearest end-effector pose if
there is one (NaN otherwise). Frames without a close enough partner are not recorded and counted
(``unmatched``). Writing happens on the library recorder's thread
(:class:`stare_robot.deploy.EpisodeRecorder`), never in a callback; frames it cannot keep up with
are dropped and counted (``dropped``); both counts are in the stop answer and on ``~/status``
(std_msgs/String JSON), with the messages received per topic. Every ``status_period_s``
``~/status`` also carries a heartbeat: ``recording``, ``frames`` written so far, ``dropped``,
``unmatched`` and ``last_episode`` (what ``stare-robot robot status`` prints).

    episode_recorder --ros-args --params-file launch/config/franka_sim.yaml -p store_path:=data/robot.zarr
"""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from stare_robot import keys
from stare_robot.deploy import EpisodeRecorder, RecorderError, pairing
from stare_robot.robots.profiles import JointStateError, get_profile, order_joints
from stare_robot_ros import conversions as conv
from stare_robot_ros.node_runner import NodeConfigError, run_node


def image_qos(depth: int) -> QoSProfile:
    """Best effort (so a camera's sensor-data publisher matches), but a deeper queue than the
    sensor-data profile's 5: a recorder falls behind for a moment on a big image burst."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT)


FRAME_TOPICS = {"ee_pose": pairing.SOURCE_EE_POSE, "image": pairing.SOURCE_IMAGE,
                "joint_states": pairing.SOURCE_JOINTS}


class EpisodeRecorderNode(Node):
    def __init__(self, parameter_overrides=None):
        super().__init__("episode_recorder", parameter_overrides=parameter_overrides)
        p = self._declare_parameters()
        if p["frame_topic"] not in FRAME_TOPICS:
            raise NodeConfigError(f"frame_topic {p['frame_topic']!r} is not valid; use one of {tuple(FRAME_TOPICS)}")
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
        frame = FRAME_TOPICS[p["frame_topic"]]
        required = [pairing.SOURCE_JOINTS] + ([pairing.SOURCE_IMAGE] if p["image_topic"] else [])
        self.matcher = pairing.StampMatcher(
            frame, [s for s in required if s != frame],
            optional=[pairing.SOURCE_EE_POSE] if frame != pairing.SOURCE_EE_POSE else [],
            max_skew_s=p["max_stamp_skew_s"])
        self.received = Counter()  # messages per topic (compare with what was published)
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joints, 50)
        self.create_subscription(PoseStamped, p["ee_pose_topic"], self._on_pose, 50)
        self.create_subscription(Float64MultiArray, p["action_topic"], self._on_action, 50)
        if p["image_topic"]:
            self.create_subscription(Image, p["image_topic"], self._on_image, image_qos(p["image_queue_depth"]))
        self.create_service(Trigger, "~/start", self._on_start)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self.create_service(SetBool, "~/label", self._on_label)
        self.last_episode: str | None = None
        if p["status_period_s"] > 0:  # what ``stare-robot robot status`` shows
            self.create_timer(p["status_period_s"], self._publish_status)
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
            "status_period_s": 1.0,  # ~/status heartbeat (recording, frames so far); 0 = off
            "image_queue_depth": 30,  # images the subscription holds for a busy callback thread
            "max_stamp_skew_s": 0.02,  # a frame's joint state / image / pose stamps at most this apart
            "camera_name": "base_camera",
            "image_topic": "camera/image_raw",  # "" = record no images
            "joint_states_topic": "joint_states",
            "ee_pose_topic": "ee_pose",
            "action_topic": "action",
        }
        return {k: self.declare_parameter(k, v).value for k, v in defaults.items()}

    # --- inputs ---
    def _on_joints(self, msg: JointState) -> None:
        self.received["joint_states"] += 1
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
        self._add(pairing.SOURCE_JOINTS, msg.header.stamp, arrays)

    def _on_pose(self, msg: PoseStamped) -> None:
        self.received["ee_pose"] += 1
        self._add(pairing.SOURCE_EE_POSE, msg.header.stamp, conv.pose_array(msg).astype(np.float32))

    def _on_image(self, msg: Image) -> None:
        self.received["image"] += 1
        try:
            rgb = conv.image_array(msg)
        except ValueError as err:
            self.get_logger().warning(f"ignored image: {err}", throttle_duration_sec=1.0)
            return
        self._add(pairing.SOURCE_IMAGE, msg.header.stamp, rgb)

    def _on_action(self, msg: Float64MultiArray) -> None:
        self.recorder.add_action(np.asarray(msg.data, np.float64), time.monotonic(), conv.action_stamp(msg))

    def _add(self, source: str, stamp, value) -> None:
        """Offer a message (with its arrival time) to the stamp matcher; record each frame it
        completes, as received when its first part arrived (actions after that are its own)."""
        if not self.recorder.recording:
            return
        for t, parts in self.matcher.add(source, conv.time_seconds(stamp), (value, time.monotonic())):
            present = {s: v for s, v in parts.items() if v is not None}
            arrays = dict(present[pairing.SOURCE_JOINTS][0])
            pose = present.get(pairing.SOURCE_EE_POSE, (np.full(7, np.nan, np.float32), None))[0]
            arrays[keys.OBS_EE_POSE] = pose
            if pairing.SOURCE_IMAGE in present:
                arrays[self.rgb_key] = present[pairing.SOURCE_IMAGE][0]
            self.recorder.add_frame(t, arrays, received=min(r for _, r in present.values()))

    # --- services ---
    def _on_start(self, request, response):
        p = self.p
        attrs = {keys.ATTR_TASK: p["task"], keys.ATTR_INSTRUCTION: p["instruction"],
                 keys.ATTR_ROBOT: p["robot"], keys.ATTR_SOURCE: p["source"],
                 keys.ATTR_CONTROL_RATE: float(p["control_rate_hz"]),
                 keys.ATTR_ACTION_SPACE: keys.ACTION_SPACE_EE_DELTA}
        try:
            self.recorder.start(attrs)
            self.matcher.reset()
            self.received.clear()
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
                  "unmatched": self.matcher.unmatched, "received": dict(self.received),
                  "keyframes": list(r.tracker.keyframes)}
        if r.dropped:
            self.get_logger().warning(f"dropped {r.dropped} of {r.received} frames (writer too slow)")
        self.status_pub.publish(String(data=json.dumps(report)))
        self.last_episode = episode
        response.success = episode is not None
        response.message = json.dumps(report)
        return response

    def _publish_status(self) -> None:
        r = self.recorder
        self.status_pub.publish(String(data=json.dumps({
            "recording": r.recording, "frames": r.written, "dropped": r.dropped,
            "unmatched": self.matcher.unmatched, "last_episode": self.last_episode})))

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
