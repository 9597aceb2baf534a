"""RealSenseCamera + CameraSupervisor on librealsense's software device (no ROS, no hardware):
injected frames come out equal, depth aligned as the pinhole model predicts, unplug/replug is
reported and survived, bad requests are named."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyrealsense2")

from software_camera import (
    PATCH_DEPTH_MM,
    SoftwareRealSense,
    expected_aligned_patch_columns,
    focal,
    frame,
)

from stare_robot.cameras import (
    STATE_CONNECTED,
    STATE_DISCONNECTED,
    STATE_WAITING,
    CameraError,
    CameraSupervisor,
)
from stare_robot.cameras.realsense import RealSenseCamera

W, H, FPS = 64, 48, 30


def _read_after(cam, sw, index):
    sw.inject(index)
    return cam.read(1.0)


def test_injected_frames_come_out_equal_with_their_timestamps_and_aligned_depth():
    sw = SoftwareRealSense(W, H, FPS)
    with RealSenseCamera(width=W, height=H, fps=FPS, device_factory=lambda: sw.device) as cam:
        got = [f for i in range(8) if (f := _read_after(cam, sw, i)) is not None]
        K = cam.color_intrinsics.K
    assert len(got) >= 6  # the syncer may hold back its first set
    assert [f.frame_number for f in got] == sorted({f.frame_number for f in got})
    for f in got:
        rgb, depth, t_ms = frame(f.frame_number, W, H, FPS)
        np.testing.assert_array_equal(f.color, rgb)
        assert f.timestamp == pytest.approx(t_ms / 1000.0, abs=1e-6)
        # aligned to colour: the patch moved by fx * baseline / Z pixels, values kept in mm
        cols = np.nonzero((f.depth > 0).any(axis=0))[0]
        assert (cols[0], cols[-1]) == expected_aligned_patch_columns(f.frame_number, W, H)
        assert set(np.unique(f.depth)) == {0, PATCH_DEPTH_MM}
        assert not np.array_equal(f.depth, depth)  # not passed through unaligned
    np.testing.assert_allclose(K, [[focal(W), 0, W / 2], [0, focal(W), H / 2], [0, 0, 1]])


def test_device_clock_timestamps_are_moved_onto_the_host_clock_keeping_their_spacing():
    # (librealsense's software-device syncer does not pair hardware-clock frames, so the
    # conversion is checked on frame stand-ins: the same two calls a real frame answers)
    import time

    import pyrealsense2 as rs

    class Frame:
        def __init__(self, ms, domain):
            self.ms, self.domain = ms, domain

        def get_timestamp(self):
            return self.ms

        def get_frame_timestamp_domain(self):
            return self.domain

    cam = RealSenseCamera()
    before = time.time()
    first = cam._host_time(Frame(5000.0, rs.timestamp_domain.hardware_clock))  # ms since boot
    assert before <= first <= time.time()  # anchored at the host's now
    later = cam._host_time(Frame(5000.0 + 33.25, rs.timestamp_domain.hardware_clock))
    assert later - first == pytest.approx(0.03325, abs=1e-6)  # the device's spacing kept
    # host-clock domains pass through unchanged
    assert cam._host_time(Frame(1.7e12, rs.timestamp_domain.system_time)) == 1.7e9
    assert cam._host_time(Frame(1.7e12 + 5, rs.timestamp_domain.global_time)) == pytest.approx(1.7e9 + 0.005)


def test_unaligned_depth_keeps_the_depth_cameras_pixels():
    sw = SoftwareRealSense(W, H, FPS)
    with RealSenseCamera(width=W, height=H, fps=FPS, align_depth=False,
                         device_factory=lambda: sw.device) as cam:
        got = [f for i in range(6) if (f := _read_after(cam, sw, i)) is not None]
    assert got
    for f in got:
        np.testing.assert_array_equal(f.depth, frame(f.frame_number, W, H, FPS)[1])


def test_unplug_is_reported_and_the_camera_is_reconnected_when_it_returns():
    plugged = {"device": SoftwareRealSense(W, H, FPS)}
    cam = RealSenseCamera(width=W, height=H, fps=FPS,
                          device_factory=lambda: plugged["device"] and plugged["device"].device)
    reports = []
    sup = CameraSupervisor(cam, frame_timeout_s=0.3, retry_period_s=0.1,
                           report=lambda state, msg: reports.append((state, msg)))

    def run(until, inject=True, limit=200):
        frames = []
        for i in range(limit):
            if inject and plugged["device"] is not None and cam.is_connected:
                plugged["device"].inject(i)
            f = sup.step(read_timeout_s=0.05)
            if f is not None:
                frames.append(f)
            if until(frames):
                return frames
        raise AssertionError(f"gave up after {limit} steps; reports {reports}")

    before = run(lambda fr: len(fr) >= 3)
    assert reports == [(STATE_CONNECTED, "Software RealSense (serial SW-0001) streaming")]

    plugged["device"] = None  # unplugged: frames stop and the device is gone
    run(lambda fr: sup.state == STATE_WAITING, inject=False)
    assert [s for s, _ in reports] == [STATE_CONNECTED, STATE_DISCONNECTED, STATE_WAITING]
    assert "no frames for" in reports[1][1] and "no device" in reports[2][1]

    plugged["device"] = SoftwareRealSense(W, H, FPS)  # replugged (a new device handle)
    after = run(lambda fr: len(fr) >= 3)
    assert reports[-1][0] == STATE_CONNECTED and "again" in reports[-1][1]
    assert sup.connects == 2 and sup.losses == 1
    for f in before + after:
        np.testing.assert_array_equal(f.color, frame(f.frame_number, W, H, FPS)[0])
    cam.disconnect()


def test_bad_requests_name_what_is_wrong_and_what_is_valid(tmp_path):
    sw = SoftwareRealSense(W, H, FPS)
    cam = RealSenseCamera(width=1280, height=720, fps=FPS, device_factory=lambda: sw.device)
    with pytest.raises(CameraError, match=r"no colour stream 1280x720@30.*offers: 64x48@30"):
        cam.connect()
    with pytest.raises(CameraError, match="does not exist"):
        RealSenseCamera(recording=tmp_path / "missing.db3").connect()
    with pytest.raises(ValueError, match=r"\.bag or \.db3"):
        RealSenseCamera(recording=tmp_path / "video.mp4")
    with pytest.raises(ValueError, match="at least one stream"):
        RealSenseCamera(color=False, depth=False)
