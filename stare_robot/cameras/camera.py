"""A camera behind a small interface, and a supervisor that keeps reading through unplug/replug.

Library code only (no rclpy): the ROS ``camera_node`` and the benchmarks drive these classes.

    with RealSenseCamera(serial="123456789") as cam:       # any Camera
        frames = cam.read(timeout_s=1.0)                    # CameraFrames or None

    supervisor = CameraSupervisor(cam, frame_timeout_s=1.0, retry_period_s=1.0, report=print)
    while running:
        frames = supervisor.step()     # connects, reads, reports loss and reconnects by itself
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import numpy as np

# what CameraSupervisor reports (first argument of its ``report`` callback)
STATE_CONNECTED = "connected"
STATE_DISCONNECTED = "disconnected"
STATE_WAITING = "waiting"  # not connected yet, or reconnect attempts failing


class CameraError(RuntimeError):
    """The camera cannot deliver: not found, unplugged, or asked for a mode it lacks."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole model of one stream (OpenCV convention)."""

    width: int
    height: int
    K: np.ndarray  # (3, 3) float64 [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortion_model: str  # ROS name: "plumb_bob" (Brown-Conrady k1 k2 p1 p2 k3)
    distortion: tuple[float, ...]  # the model's coefficients


@dataclass(frozen=True)
class CameraFrames:
    """One synchronised capture."""

    color: np.ndarray | None  # (H, W, 3) uint8 RGB
    depth: np.ndarray | None  # (H, W) uint16 millimetres; in the colour camera's pixels when aligned
    timestamp: float  # seconds, the device's capture time on the host clock (see RealSenseCamera)
    frame_number: int


class Camera(abc.ABC):
    """Explicit connect/disconnect; ``read`` waits up to ``timeout_s`` for the next frames."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the device and start streaming; raises :class:`CameraError` saying why not."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Stop streaming and release the device (safe to call when not connected)."""

    @abc.abstractmethod
    def read(self, timeout_s: float) -> CameraFrames | None:
        """The next frames, None when none came within ``timeout_s``; raises CameraError when the
        device is gone."""

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """Which device this is (name, serial or recording), for reports."""

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()


def _fault(err: Exception, kind: str) -> str:
    """A CameraError says what happened in its own words; anything else is a bug, named in full."""
    return str(err) if isinstance(err, CameraError) else f"{kind}: {err!r}"


class CameraSupervisor:
    """Keeps a :class:`Camera` streaming: connects, reads, and when no frames come for
    ``frame_timeout_s`` (or the device errors) reports the loss, disconnects and retries every
    ``retry_period_s``. ``report(state, message)`` is called on every change of state (STATE_*)."""

    def __init__(
        self,
        camera: Camera,
        frame_timeout_s: float = 1.0,
        retry_period_s: float = 1.0,
        report: Callable[[str, str], None] = lambda state, message: None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if frame_timeout_s <= 0 or retry_period_s <= 0:
            raise ValueError(
                f"frame_timeout_s and retry_period_s must be > 0, got {frame_timeout_s}, {retry_period_s}"
            )
        self.camera = camera
        self.frame_timeout_s = frame_timeout_s
        self.retry_period_s = retry_period_s
        self.report = report
        self.clock = clock
        self.state = ""
        self.connects = 0  # successful connections (1 + reconnections)
        self.losses = 0  # times the stream was lost
        self._next_try = -np.inf
        self._last_frame_at = 0.0

    def _set(self, state: str, message: str) -> None:
        if state != self.state:
            self.state = state
            self.report(state, message)

    def step(self, read_timeout_s: float = 0.1) -> CameraFrames | None:
        """Do one bounded unit of work; the frames read, if any. Never raises for a camera fault:
        every failure of ``connect``/``read`` becomes a reported state, so the state reported
        is always the state the supervisor acts on."""
        now = self.clock()
        if not self.camera.is_connected:
            if now < self._next_try:
                time.sleep(min(read_timeout_s, self._next_try - now))
                return None
            try:
                self.camera.connect()
            except Exception as err:  # noqa: BLE001  a driver bug must not end the retrying
                self.camera.disconnect()
                self._next_try = now + self.retry_period_s
                why = _fault(err, "camera error")
                self._set(STATE_WAITING, f"{why}; retrying every {self.retry_period_s:g} s")
                return None
            self.connects += 1
            self._last_frame_at = self.clock()
            again = " again" if self.connects > 1 else ""
            self._set(STATE_CONNECTED, f"{self.camera.description} streaming{again}")
        try:
            frames = self.camera.read(read_timeout_s)
        except Exception as err:  # noqa: BLE001  e.g. a corrupt frame: reconnect, keep reporting
            self._lost(_fault(err, "reader error"))
            return None
        now = self.clock()
        if frames is not None:
            self._last_frame_at = now
            return frames
        if now - self._last_frame_at > self.frame_timeout_s:
            self._lost(f"no frames for {now - self._last_frame_at:.1f} s")
        return None

    def _lost(self, why: str) -> None:
        self.losses += 1
        self.camera.disconnect()
        self._next_try = self.clock() + self.retry_period_s
        self._set(STATE_DISCONNECTED, f"{self.camera.description} lost: {why}; reconnecting")
