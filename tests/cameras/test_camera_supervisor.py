"""CameraSupervisor's state machine against a scripted camera (the real-device path is tested on
librealsense's software device in tests/ros/test_camera_node_realsense.py): a fault that is not a
CameraError - a driver bug, a corrupt frame - must be reported and survived like an unplug, so the
reported state never says "waiting" while frames flow."""

from __future__ import annotations

import numpy as np

from stare_robot.cameras import (
    STATE_CONNECTED,
    STATE_DISCONNECTED,
    STATE_WAITING,
    Camera,
    CameraFrames,
    CameraSupervisor,
)


class ScriptedCamera(Camera):
    """Each connect/read pops the next scripted outcome: an exception to raise, or a result."""

    def __init__(self, connects: list, reads: list) -> None:
        self.connects, self.reads = list(connects), list(reads)
        self._connected = False
        self.disconnects = 0

    def connect(self) -> None:
        outcome = self.connects.pop(0) if self.connects else None
        if isinstance(outcome, Exception):
            raise outcome
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False
        self.disconnects += 1

    def read(self, timeout_s: float) -> CameraFrames | None:
        outcome = self.reads.pop(0) if self.reads else None  # then: no new frames
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def description(self) -> str:
        return "scripted camera"


def _frames(n: int) -> CameraFrames:
    return CameraFrames(np.full((2, 2, 3), n, np.uint8), None, float(n), n)


def _run(sup: CameraSupervisor, clock: list, steps: int) -> list:
    got = []
    for _ in range(steps):
        clock[0] += 0.05
        f = sup.step(read_timeout_s=0.0)
        if f is not None:
            got.append(f.frame_number)
    return got


def test_an_unexpected_read_error_is_a_loss_and_the_reconnect_is_reported():
    cam = ScriptedCamera(connects=[None, None],
                         reads=[_frames(0), ValueError("corrupt frame"), _frames(1), _frames(2)])
    reports, clock = [], [0.0]
    sup = CameraSupervisor(cam, frame_timeout_s=1.0, retry_period_s=0.1,
                           report=lambda s, m: reports.append((s, m)), clock=lambda: clock[0])
    got = _run(sup, clock, 8)
    assert got == [0, 1, 2]
    assert [s for s, _ in reports] == [STATE_CONNECTED, STATE_DISCONNECTED, STATE_CONNECTED]
    assert "reader error" in reports[1][1] and "corrupt frame" in reports[1][1]
    assert "again" in reports[2][1]
    assert sup.state == STATE_CONNECTED and sup.losses == 1 and sup.connects == 2


def test_an_unexpected_connect_error_is_retried_and_named():
    cam = ScriptedCamera(connects=[KeyError("usb handle"), None], reads=[_frames(7)])
    reports, clock = [], [0.0]
    sup = CameraSupervisor(cam, frame_timeout_s=1.0, retry_period_s=0.1,
                           report=lambda s, m: reports.append((s, m)), clock=lambda: clock[0])
    got = _run(sup, clock, 6)
    assert got == [7]
    assert [s for s, _ in reports] == [STATE_WAITING, STATE_CONNECTED]
    assert "usb handle" in reports[0][1] and "retrying every 0.1 s" in reports[0][1]
