"""camera_node as its own process, configured by launch/config/franka.yaml (the real robot's
params file), replaying a recording made through librealsense's software device: the published
images are the injected frames (pixels and device timestamps), depth is aligned to colour,
CameraInfo carries the device intrinsics, and the recording's end - the camera going away - is
reported and recovered from."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyrealsense2")

from ros_graph import probe, spin_until, start_node  # noqa: F401  (fixtures)
from software_camera import (
    PATCH_DEPTH_MM,
    T0_MS,
    expected_aligned_patch_columns,
    focal,
    frame,
)

pytestmark = pytest.mark.ros

W, H, FPS, FRAMES = 64, 48, 30, 12


def record_software_camera(path) -> None:
    """FRAMES injected frames, streamed through the real sensors into a librealsense recording.

    Recorded in a child process: librealsense's recorder objects, torn down at the exit of a
    process that also ran rclpy, crashed that process (SIGSEGV after every test had passed)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from software_camera import SoftwareRealSense\n"
        "from stare_robot.cameras.realsense import RealSenseCamera\n"
        "W, H, FPS, N = (int(a) for a in sys.argv[3:7])\n"
        "sw = SoftwareRealSense(W, H, FPS, record_to=sys.argv[2])\n"
        "cam = RealSenseCamera(width=W, height=H, fps=FPS, device_factory=lambda: sw.device)\n"
        "with cam:\n"
        "    for i in range(N):\n"
        "        sw.inject(i)\n"
        "        cam.read(0.5)\n"
    )
    here = str(Path(__file__).parent)
    subprocess.run([sys.executable, "-c", code, here, str(path), str(W), str(H), str(FPS),
                    str(FRAMES)], check=True, timeout=60)


def index_of(stamp) -> int:
    ms = stamp.sec * 1e3 + stamp.nanosec * 1e-6
    return round((ms - T0_MS) * FPS / 1000.0)


def test_camera_node_publishes_the_recorded_frames_and_survives_the_camera_going_away(tmp_path, probe, start_node):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    from stare_robot_ros.conversions import image_array
    from std_msgs.msg import String

    recording = tmp_path / "software.db3"
    record_software_camera(recording)
    assert recording.stat().st_size > 0
    node = start_node("camera_node", "franka.yaml", recording=str(recording), width=W, height=H,
                      fps=FPS, frame_timeout_s=0.5, retry_period_s=0.2)
    colors, depths, infos, status = [], [], [], []
    probe.create_subscription(Image, "camera/color/image_raw", colors.append, qos_profile_sensor_data)
    probe.create_subscription(Image, "camera/aligned_depth_to_color/image_raw", depths.append, qos_profile_sensor_data)
    probe.create_subscription(CameraInfo, "camera/color/camera_info", infos.append, qos_profile_sensor_data)
    probe.create_subscription(String, "camera/status", lambda m: status.append(m.data), 10)

    def replayed_after_loss():
        lost = [i for i, s in enumerate(status) if s.startswith("disconnected")]
        return lost and any(s.startswith("connected") and "again" in s for s in status[lost[0]:]) \
            and len(colors) >= 2 * FRAMES - 6

    spin_until(probe, replayed_after_loss, 90, "a replay, its end reported, and a second replay", [node])
    assert "no frames for" in next(s for s in status if s.startswith("disconnected"))

    seen = {}
    for msg in colors:
        i = index_of(msg.header.stamp)
        assert 0 <= i < FRAMES and msg.encoding == "rgb8" and msg.header.frame_id == "camera_color_optical_frame"
        np.testing.assert_array_equal(image_array(msg), frame(i, W, H, FPS)[0], err_msg=f"frame {i}")
        ms = msg.header.stamp.sec * 1e3 + msg.header.stamp.nanosec * 1e-6
        assert ms == pytest.approx(frame(i, W, H, FPS)[2], abs=1e-3)  # the device's timestamp
        seen[i] = seen.get(i, 0) + 1
    assert max(seen.values()) >= 2, "frames come again after the reconnection (the replay restarts)"
    for msg in depths:
        i = index_of(msg.header.stamp)
        depth = np.frombuffer(bytes(msg.data), "<u2").reshape(H, W)
        assert msg.encoding == "16UC1"
        cols = np.nonzero((depth > 0).any(axis=0))[0]
        assert (cols[0], cols[-1]) == expected_aligned_patch_columns(i, W, H), f"frame {i} not aligned"
        assert set(np.unique(depth)) == {0, PATCH_DEPTH_MM}
    assert len(depths) >= FRAMES
    np.testing.assert_allclose(np.reshape(infos[-1].k, (3, 3)),
                               [[focal(W), 0, W / 2], [0, focal(W), H / 2], [0, 0, 1]])
    assert (infos[-1].width, infos[-1].height) == (W, H)
    assert node.stop() == 0


def test_camera_node_rejects_a_recording_that_is_not_one(start_node):
    node = start_node("camera_node", "franka.yaml", recording="/tmp/video.mp4")
    assert node.proc.wait(60) == 2
    assert "recording must be a .bag or .db3 file" in node.log()
