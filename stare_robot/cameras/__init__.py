"""Cameras for the real-robot path (pure library: no rclpy). ``RealSenseCamera`` needs the
``realsense`` extra (pyrealsense2); it is imported from its module so this package stays light.

    from stare_robot.cameras import CameraSupervisor
    from stare_robot.cameras.realsense import RealSenseCamera
"""

from __future__ import annotations

from stare_robot.cameras.camera import (
    STATE_CONNECTED,
    STATE_DISCONNECTED,
    STATE_WAITING,
    Camera,
    CameraError,
    CameraFrames,
    CameraIntrinsics,
    CameraSupervisor,
)

__all__ = [
    "STATE_CONNECTED",
    "STATE_DISCONNECTED",
    "STATE_WAITING",
    "Camera",
    "CameraError",
    "CameraFrames",
    "CameraIntrinsics",
    "CameraSupervisor",
]
