"""Intel RealSense colour + depth through librealsense (``pyrealsense2``, the ``realsense`` extra).

One code path for every source: a live camera picked by serial number, a recording (``.bag`` /
``.db3``, played back by librealsense) or any ``rs.device`` a factory returns (librealsense's
software device, in tests and benchmarks). The chosen sensors stream into an ``rs.syncer``; depth
is aligned to colour with ``rs.align`` and converted to millimetres.

Timestamps are the device's capture times: in the host clock already when librealsense reports
them so (global / system time domains), otherwise (hardware clock) shifted once, at the first
frame, onto the host clock.

    cam = RealSenseCamera(serial="123456789", width=640, height=480, fps=30)
    with cam:
        frames = cam.read(timeout_s=1.0)   # CameraFrames: color (480, 640, 3), depth (480, 640) mm
        cam.color_intrinsics               # CameraIntrinsics from the device's calibration
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stare_robot.cameras.camera import Camera, CameraError, CameraFrames, CameraIntrinsics

RECORDING_SUFFIXES = (".bag", ".db3")
MM_PER_M = 1000.0


def _rs():
    try:
        import pyrealsense2 as rs
    except ImportError as err:  # libusb missing, or the extra not installed
        raise CameraError(
            f"pyrealsense2 cannot be imported ({err}); install the realsense extra "
            "(pip install -e '.[realsense]') and Debian's libusb-1.0-0"
        ) from err
    return rs


def intrinsics_of(profile) -> CameraIntrinsics:
    """:class:`CameraIntrinsics` of a librealsense video stream profile."""
    rs = _rs()
    i = profile.as_video_stream_profile().get_intrinsics()
    K = np.array([[i.fx, 0.0, i.ppx], [0.0, i.fy, i.ppy], [0.0, 0.0, 1.0]])
    # RealSense colour cameras report (inverse) Brown-Conrady: ROS calls the model plumb_bob
    coeffs = tuple(float(c) for c in i.coeffs) if i.model != rs.distortion.none else (0.0,) * 5
    return CameraIntrinsics(int(i.width), int(i.height), K, "plumb_bob", coeffs)


class RealSenseCamera(Camera):
    """A RealSense's colour (rgb8) and depth (z16) streams; see the module docstring.

    ``serial`` "" = the first camera found; ``recording`` a file path replaces the live camera;
    ``device_factory`` (returns an ``rs.device`` or None when absent) replaces both.
    """

    def __init__(
        self,
        serial: str = "",
        recording: str | Path = "",
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        color: bool = True,
        depth: bool = True,
        align_depth: bool = True,
        realtime_playback: bool = True,
        device_factory: Callable[[], object | None] | None = None,
    ):
        if not (color or depth):
            raise ValueError("enable at least one stream (color or depth)")
        if width <= 0 or height <= 0 or fps <= 0:
            raise ValueError(f"width, height and fps must be > 0, got {width}x{height} at {fps}")
        self.recording = Path(recording) if str(recording) else None
        if self.recording is not None and self.recording.suffix not in RECORDING_SUFFIXES:
            raise ValueError(f"recording must be a {' or '.join(RECORDING_SUFFIXES)} file, got {self.recording}")
        self.serial = serial
        self.width, self.height, self.fps = int(width), int(height), int(fps)
        self.want_color, self.want_depth = bool(color), bool(depth)
        self.align_depth = bool(align_depth) and self.want_color and self.want_depth
        self.realtime_playback = realtime_playback
        self.device_factory = device_factory
        self.color_intrinsics: CameraIntrinsics | None = None
        self.depth_intrinsics: CameraIntrinsics | None = None
        self.incomplete = 0  # framesets that lacked a wanted stream (dropped)
        self._device = None
        self._sensors: list = []
        self._syncer = None
        self._align = None
        self._depth_scale = 1.0 / MM_PER_M
        self._clock_offset: float | None = None
        self._name = "RealSense"

    # --- connection ---
    @property
    def is_connected(self) -> bool:
        return self._syncer is not None

    @property
    def description(self) -> str:
        if self.recording is not None:
            return f"recording {self.recording}"
        return f"{self._name} (serial {self.serial or 'any'})"

    def _find_device(self):
        rs = _rs()
        if self.device_factory is not None:
            device = self.device_factory()
            if device is None:
                raise CameraError(f"{self.description}: no device")
            return device
        ctx = rs.context()
        if self.recording is not None:
            if not self.recording.is_file():
                raise CameraError(f"recording {self.recording} does not exist")
            device = ctx.load_device(str(self.recording))
            device.as_playback().set_real_time(self.realtime_playback)
            return device
        devices = list(ctx.query_devices())
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        for device, serial in zip(devices, serials):
            if not self.serial or serial == self.serial:
                return device
        raise CameraError(
            f"no RealSense with serial {self.serial!r} connected; connected: {serials or 'none'}"
            if self.serial else "no RealSense camera connected"
        )

    def _pick(self, device, stream, fmt) -> tuple[object, object]:
        """(sensor, profile) streaming ``stream`` in ``fmt`` at the configured size and rate."""
        rs = _rs()
        offered = []
        for sensor in device.query_sensors():
            for profile in sensor.get_stream_profiles():
                if profile.stream_type() != stream or not profile.is_video_stream_profile():
                    continue
                v = profile.as_video_stream_profile()
                offered.append(f"{v.width()}x{v.height()}@{profile.fps()} {profile.format()}")
                if (v.width(), v.height(), profile.fps(), profile.format()) == (
                    self.width, self.height, self.fps, fmt
                ):
                    return sensor, profile
        name = "colour" if stream == rs.stream.color else "depth"
        raise CameraError(
            f"{self.description} has no {name} stream {self.width}x{self.height}@{self.fps} {fmt}; "
            f"it offers: {', '.join(sorted(set(offered))) or 'none'}"
        )

    def connect(self) -> None:
        rs = _rs()
        if self.is_connected:
            return
        try:
            device = self._find_device()
            if device.supports(rs.camera_info.name):
                self._name = device.get_info(rs.camera_info.name)
            if not self.serial and device.supports(rs.camera_info.serial_number):
                self.serial = device.get_info(rs.camera_info.serial_number)
            chosen: dict = {}  # sensor -> its profiles
            if self.want_color:
                sensor, profile = self._pick(device, rs.stream.color, rs.format.rgb8)
                chosen.setdefault(sensor, []).append(profile)
                self.color_intrinsics = intrinsics_of(profile)
            if self.want_depth:
                sensor, profile = self._pick(device, rs.stream.depth, rs.format.z16)
                chosen.setdefault(sensor, []).append(profile)
                self.depth_intrinsics = intrinsics_of(profile)
                if sensor.supports(rs.option.depth_units):
                    self._depth_scale = float(sensor.get_option(rs.option.depth_units))
            syncer = rs.syncer()
            for sensor, profiles in chosen.items():
                sensor.open(profiles)
                self._sensors.append(sensor)  # from here on disconnect() closes it
                sensor.start(syncer)
        except RuntimeError as err:  # librealsense's own errors: name the device
            self.disconnect()
            raise CameraError(f"{self.description}: {err}") from err
        self._device, self._syncer = device, syncer
        self._align = rs.align(rs.stream.color) if self.align_depth else None
        self._clock_offset = None

    def disconnect(self) -> None:
        for sensor in self._sensors:
            for close in (sensor.stop, sensor.close):
                try:
                    close()
                except RuntimeError:
                    pass  # an unplugged device cannot be stopped cleanly: release it anyway
        self._sensors, self._syncer, self._device, self._align = [], None, None, None

    # --- frames ---
    def _host_time(self, frame) -> float:
        rs = _rs()
        t = frame.get_timestamp() / MM_PER_M  # librealsense reports milliseconds
        if frame.get_frame_timestamp_domain() in (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time):
            return t
        if self._clock_offset is None:  # device clock: anchor its first frame at the host's now
            self._clock_offset = time.time() - t
        return t + self._clock_offset

    def read(self, timeout_s: float) -> CameraFrames | None:
        if not self.is_connected:
            raise CameraError(f"{self.description} is not connected")
        try:
            ok, frames = self._syncer.try_wait_for_frames(max(1, int(timeout_s * 1000)))
        except RuntimeError as err:
            raise CameraError(f"{self.description}: {err}") from err
        if not ok:
            return None
        frameset = frames.as_frameset()
        if self._align is not None and frameset.get_color_frame() and frameset.get_depth_frame():
            frameset = self._align.process(frameset)
        color = frameset.get_color_frame() if self.want_color else None
        depth = frameset.get_depth_frame() if self.want_depth else None
        if (self.want_color and not color) or (self.want_depth and not depth):
            self.incomplete += 1  # the syncer's first sets, or a stream that skipped a frame
            return None
        first = color or depth
        return CameraFrames(
            color=np.asanyarray(color.get_data()).copy() if color else None,
            depth=self._depth_mm(np.asanyarray(depth.get_data())) if depth else None,
            timestamp=self._host_time(first),
            frame_number=int(first.get_frame_number()),
        )

    def _depth_mm(self, raw: np.ndarray) -> np.ndarray:
        if abs(self._depth_scale * MM_PER_M - 1.0) < 1e-9:
            return raw.copy()
        return np.round(raw * (self._depth_scale * MM_PER_M)).clip(0, 65535).astype(np.uint16)
