"""Standard ROS 2 messages <-> numpy, in one place (no node logic here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from stare_robot import keys
from stare_robot.robots.profiles import JointStateError, order_joints

# std_msgs/Float64, a 1-joint trajectory (a joint trajectory controller on the finger joint), or
# std_msgs/Float64MultiArray (a ros2_control forward position controller's ``~/commands``)
GRIPPER_MSG_TYPES = ("float64", "joint_trajectory", "float64_array")


def time_msg(seconds: float) -> Time:
    sec = int(np.floor(seconds))
    return Time(sec=sec, nanosec=round((seconds - sec) * 1e9) % 1_000_000_000)


def time_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def duration_msg(seconds: float) -> Duration:
    sec = int(np.floor(seconds))
    return Duration(sec=sec, nanosec=round((seconds - sec) * 1e9) % 1_000_000_000)


def joint_state_msg(
    names: Sequence[str], position: np.ndarray, velocity: np.ndarray, stamp: Time
) -> JointState:
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = list(names)
    msg.position = [float(v) for v in position]
    msg.velocity = [float(v) for v in velocity]
    return msg


def joint_trajectory_msg(
    names: Sequence[str], positions: np.ndarray, time_from_start: float, stamp: Time
) -> JointTrajectory:
    """A one-point trajectory: reach ``positions`` ``time_from_start`` seconds after ``stamp``."""
    msg = JointTrajectory()
    msg.header.stamp = stamp
    msg.joint_names = list(names)
    point = JointTrajectoryPoint()
    point.positions = [float(v) for v in positions]
    point.time_from_start = duration_msg(time_from_start)
    msg.points = [point]
    return msg


def trajectory_target(msg: JointTrajectory, wanted: Sequence[str]) -> np.ndarray:
    """The final point's positions of ``wanted`` joints; raises JointStateError when malformed."""
    if not msg.points:
        raise JointStateError("joint trajectory has no points")
    return order_joints(msg.joint_names, msg.points[-1].positions, wanted)


def gripper_msg(kind: str, joint: str, command: float, stamp: Time):
    """Gripper finger-position command as ``kind`` (one of GRIPPER_MSG_TYPES)."""
    if kind == "float64":
        return Float64(data=float(command))
    if kind == "float64_array":
        return Float64MultiArray(data=[float(command)])
    return joint_trajectory_msg([joint], [command], 0.0, stamp)


def gripper_command(msg, joint: str) -> float:
    """Finger position out of a gripper message (Float64 or JointTrajectory)."""
    if isinstance(msg, Float64):
        value = float(msg.data)
    elif isinstance(msg, Float64MultiArray):
        if len(msg.data) != 1:
            raise JointStateError(f"gripper command array must hold 1 value, got {len(msg.data)}")
        value = float(msg.data[0])
    else:
        value = float(trajectory_target(msg, [joint])[0])
    if not np.isfinite(value):
        raise JointStateError(f"gripper command is not finite: {value}")
    return value


def gripper_msg_class(kind: str):
    if kind not in GRIPPER_MSG_TYPES:
        raise ValueError(f"gripper_msg_type {kind!r} is not valid; use one of {GRIPPER_MSG_TYPES}")
    return {"float64": Float64, "float64_array": Float64MultiArray}.get(kind, JointTrajectory)


def pose_stamped_msg(pose: np.ndarray, frame_id: str, stamp: Time) -> PoseStamped:
    """(7,) ``[xyz, wxyz]`` -> PoseStamped."""
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pose[:3])
    q.w, q.x, q.y, q.z = (float(v) for v in pose[3:7])
    return msg


def pose_array(msg: PoseStamped) -> np.ndarray:
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z, q.w, q.x, q.y, q.z])


def _image(pixels: np.ndarray, encoding: str, frame_id: str, stamp: Time) -> Image:
    """A C-contiguous (H, W[, C]) array -> sensor_msgs/Image of ``encoding``, little-endian."""
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = pixels.itemsize * (pixels.size // msg.height)
    msg.data = pixels.tobytes()
    return msg


def image_msg(rgb: np.ndarray, frame_id: str, stamp: Time) -> Image:
    """(H, W, 3) uint8 -> sensor_msgs/Image rgb8."""
    return _image(np.ascontiguousarray(rgb, dtype=np.uint8), "rgb8", frame_id, stamp)


def depth_image_msg(depth_mm: np.ndarray, frame_id: str, stamp: Time) -> Image:
    """(H, W) uint16 millimetres -> sensor_msgs/Image 16UC1 (REP 118's depth encoding)."""
    return _image(np.ascontiguousarray(depth_mm, dtype="<u2"), "16UC1", frame_id, stamp)


def camera_info_msg(
    K: np.ndarray, height: int, width: int, frame_id: str, stamp: Time,
    distortion_model: str = "plumb_bob", distortion: Sequence[float] = (0.0,) * 5,
) -> CameraInfo:
    """Pinhole camera (default: no distortion, a simulated camera)."""
    msg = CameraInfo()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(height), int(width)
    msg.distortion_model = distortion_model
    msg.d = [float(v) for v in distortion]
    msg.k = [float(v) for v in np.asarray(K).reshape(9)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = [float(v) for v in P.reshape(12)]
    return msg


def image_array(msg: Image) -> np.ndarray:
    """sensor_msgs/Image rgb8/bgr8 -> (H, W, 3) uint8 RGB; ValueError for other encodings."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"image encoding {msg.encoding!r} is not supported; use rgb8 or bgr8")
    rgb = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : 3 * msg.width]
    rgb = rgb.reshape(msg.height, msg.width, 3)
    return rgb[..., ::-1] if msg.encoding == "bgr8" else rgb


def action_msg(action, after_stamp: float | None = None) -> Float64MultiArray:
    """An action message; ``after_stamp`` (seconds) names the joint-state stamp it followed in the
    layout's first dimension label (robot_bridge reads only ``data``; the recorder reads both)."""
    msg = Float64MultiArray(data=[float(a) for a in action])
    if after_stamp is not None and np.isfinite(after_stamp):
        n = len(msg.data)
        msg.layout.dim = [MultiArrayDimension(label=f"{keys.ACTION_STAMP_LABEL}={float(after_stamp)!r}",
                                              size=n, stride=n)]
    return msg


def action_stamp(msg: Float64MultiArray) -> float | None:
    """The stamp :func:`action_msg` put in ``msg`` (None when it carries none)."""
    for dim in msg.layout.dim:
        name, _, value = dim.label.partition("=")
        if name == keys.ACTION_STAMP_LABEL:
            try:
                return float(value)
            except ValueError:
                return None
    return None
