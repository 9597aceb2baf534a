"""``camera_node``: an Intel RealSense's colour and depth (aligned to colour) as sensor_msgs.

Publishes ``camera/color/image_raw`` (rgb8) + ``camera/color/camera_info`` and
``camera/aligned_depth_to_color/image_raw`` (16UC1, millimetres) + its ``camera_info`` (the
realsense-ros topic names), stamped with the device's capture times, CameraInfo from the device's
own calibration. ``camera/status`` (std_msgs/String) reports ``connected`` / ``disconnected`` /
``waiting`` with a reason: an unplugged camera is reported and reconnected when it comes back
(:class:`stare_robot.cameras.CameraSupervisor`), so the node survives unplug/replug.

Parameters: ``serial_number`` ("" = the first camera), ``recording`` (a ``.bag``/``.db3`` file
replayed instead of a device; at its end the node reports the stream lost and replays it),
``width``/``height``/``fps``, ``enable_color``/``enable_depth``/``align_depth`` (unaligned depth
is published with the depth camera's own CameraInfo on ``depth_topic``).

Frames are read on a thread of their own (librealsense blocks while waiting) and published from it.

    camera_node --ros-args --params-file launch/config/franka.yaml -p serial_number:=123456789
"""

from __future__ import annotations

import threading
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from stare_robot.cameras import CameraFrames, CameraIntrinsics, CameraSupervisor
from stare_robot.cameras.realsense import RealSenseCamera
from stare_robot_ros import conversions as conv
from stare_robot_ros.node_runner import NodeConfigError, run_node

READ_TIMEOUT_S = 0.1  # one wait for frames; bounds how fast the thread notices a stop


class CameraNode(Node):
    def __init__(self, device_factory=None, parameter_overrides=None):
        """``device_factory``: returns an ``rs.device`` (or None while absent) instead of looking
        for a camera by serial number - librealsense's software device in tests/benchmarks."""
        super().__init__("camera_node", parameter_overrides=parameter_overrides)
        p = self._declare_parameters()
        for name in ("frame_timeout_s", "retry_period_s"):
            if p[name] <= 0:
                raise NodeConfigError(f"{name} must be > 0, got {p[name]}")
        try:
            self.camera = RealSenseCamera(
                serial=p["serial_number"], recording=p["recording"], width=p["width"],
                height=p["height"], fps=p["fps"], color=p["enable_color"], depth=p["enable_depth"],
                align_depth=p["align_depth"], realtime_playback=p["realtime_playback"],
                device_factory=device_factory,
            )
        except ValueError as err:
            raise NodeConfigError(str(err)) from err
        if p["recording"] and not Path(p["recording"]).is_file():
            # else the supervisor would wait for it as for an unplugged camera, saying nothing
            raise NodeConfigError(f"recording {p['recording']!r}: no such file")
        self.p = p
        self.published = 0  # framesets published
        self.color_pub = self.create_publisher(Image, p["color_topic"], qos_profile_sensor_data)
        self.color_info_pub = self.create_publisher(CameraInfo, p["color_info_topic"], qos_profile_sensor_data)
        self.depth_pub = self.create_publisher(Image, p["depth_topic"], qos_profile_sensor_data)
        self.depth_info_pub = self.create_publisher(CameraInfo, p["depth_info_topic"], qos_profile_sensor_data)
        # status is latched-like (reliable, depth 10): state changes must not be lost
        self.status_pub = self.create_publisher(String, p["status_topic"], 10)
        self.supervisor = CameraSupervisor(
            self.camera, p["frame_timeout_s"], p["retry_period_s"], report=self._report
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera_reader", daemon=True)
        self._thread.start()

    def _declare_parameters(self) -> dict:
        defaults = {
            "serial_number": "",  # "" = the first RealSense found
            "recording": "",  # a .bag / .db3 file to replay instead of a device
            "realtime_playback": True,  # replay at the recorded rate (false = as fast as read)
            "width": 640,
            "height": 480,
            "fps": 30,
            "enable_color": True,
            "enable_depth": True,
            "align_depth": True,  # depth in the colour camera's pixels
            "frame_timeout_s": 1.0,  # no frames for this long = camera lost: report, reconnect
            "retry_period_s": 1.0,  # how often to look for a lost camera
            "color_frame_id": "camera_color_optical_frame",
            "depth_frame_id": "camera_depth_optical_frame",  # unaligned depth only
            "color_topic": "camera/color/image_raw",
            "color_info_topic": "camera/color/camera_info",
            "depth_topic": "camera/aligned_depth_to_color/image_raw",
            "depth_info_topic": "camera/aligned_depth_to_color/camera_info",
            "status_topic": "camera/status",
        }
        return {k: self.declare_parameter(k, v).value for k, v in defaults.items()}

    def _report(self, state: str, message: str) -> None:
        text = f"{state}: {message}"
        self.status_pub.publish(String(data=text))
        if state == "connected":  # rclpy wants one severity per logging call site
            self.get_logger().info(f"camera {text}")
        else:
            self.get_logger().warning(f"camera {text}")

    def _run(self) -> None:
        # the supervisor turns every camera fault into a reported state and a reconnect
        while not self._stop.is_set():
            frames = self.supervisor.step(READ_TIMEOUT_S)
            if frames is not None:
                self._publish(frames)

    def _publish(self, frames: CameraFrames) -> None:
        stamp = conv.time_msg(frames.timestamp)
        color_info = self.camera.color_intrinsics
        if frames.color is not None:
            frame = self.p["color_frame_id"]
            self.color_pub.publish(conv.image_msg(frames.color, frame, stamp))
            self.color_info_pub.publish(_info_msg(color_info, frame, stamp))
        if frames.depth is not None:
            aligned = self.camera.align_depth
            frame = self.p["color_frame_id" if aligned else "depth_frame_id"]
            info = color_info if aligned else self.camera.depth_intrinsics
            self.depth_pub.publish(conv.depth_image_msg(frames.depth, frame, stamp))
            self.depth_info_pub.publish(_info_msg(info, frame, stamp))
        self.published += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.camera.disconnect()


def _info_msg(intr: CameraIntrinsics, frame_id: str, stamp) -> CameraInfo:
    return conv.camera_info_msg(intr.K, intr.height, intr.width, frame_id, stamp,
                                intr.distortion_model, intr.distortion)


def main(args=None, device_factory=None) -> int:
    return run_node(lambda **kw: CameraNode(device_factory, **kw), args)


if __name__ == "__main__":
    raise SystemExit(main())
