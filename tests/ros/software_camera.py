"""librealsense's software device posing as a colour + depth RealSense (test fake, tests only).

Frames are injected into the real librealsense machinery (sensors -> syncer -> align), with known
intrinsics and a known depth-to-colour extrinsic, so a test can predict what comes out.
``frame(i)`` is a pure function of the index: another process can regenerate what was injected.

    cam = SoftwareRealSense(64, 48, fps=30)
    RealSenseCamera(width=64, height=48, fps=30, device_factory=lambda: cam.device)
    cam.inject(0)                    # (rgb, depth_mm, timestamp_ms) of frame 0
"""

from __future__ import annotations

import numpy as np
import pyrealsense2 as rs

SERIAL = "SW-0001"
T0_MS = 1.7e12  # injected timestamps (system-time domain: milliseconds since the epoch)
DEPTH_TO_COLOR_X_M = 0.05  # the depth camera sits 5 cm along x from the colour camera
PATCH_DEPTH_MM = 1000  # a square at 1 m in front of the depth camera; elsewhere no depth (0)


def focal(width: int) -> float:
    return 0.9375 * width  # 60 px at width 64: a 1 m plane shifts 3 px between the cameras


def frame(index: int, width: int, height: int, fps: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(rgb (H, W, 3) uint8, depth (H, W) uint16 mm, timestamp ms) of injected frame ``index``."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x + 3 * index) % 256, (y + 5 * index) % 256,
                    np.full_like(x, (7 * index) % 256)], axis=-1).astype(np.uint8)
    depth = np.zeros((height, width), np.uint16)
    r0, c0 = height // 4, width // 4 + index % 4  # the patch moves a little from frame to frame
    depth[r0:r0 + height // 4, c0:c0 + width // 4] = PATCH_DEPTH_MM
    return rgb, depth, T0_MS + index * 1000.0 / fps


def _intrinsics(width: int, height: int) -> rs.intrinsics:
    i = rs.intrinsics()
    i.width, i.height = width, height
    i.fx = i.fy = focal(width)
    i.ppx, i.ppy = width / 2, height / 2
    i.model = rs.distortion.none
    i.coeffs = [0.0] * 5
    return i


class SoftwareRealSense:
    """A software device with a "Depth" (z16) and a "Color" (rgb8) sensor at one size and rate.

    ``record_to`` (a ``.db3`` path) wraps it in librealsense's recorder: what is injected is also
    written to that file, as a real camera's recording would be.
    """

    def __init__(self, width: int, height: int, fps: int = 30, record_to: str | None = None):
        self.width, self.height, self.fps = width, height, fps
        dev = rs.software_device()
        dev.register_info(rs.camera_info.serial_number, SERIAL)
        dev.register_info(rs.camera_info.name, "Software RealSense")
        self.depth_sensor = dev.add_sensor("Depth")
        self.color_sensor = dev.add_sensor("Color")
        self.depth_profile = self._add(self.depth_sensor, rs.stream.depth, rs.format.z16, 2, 0)
        self.color_profile = self._add(self.color_sensor, rs.stream.color, rs.format.rgb8, 3, 1)
        self.depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
        extrinsic = rs.extrinsics()
        extrinsic.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        extrinsic.translation = [DEPTH_TO_COLOR_X_M, 0.0, 0.0]
        self.depth_profile.register_extrinsics_to(self.color_profile, extrinsic)
        dev.create_matcher(rs.matchers.default)
        self.software = dev
        self.device = rs.recorder(record_to, dev) if record_to else dev
        self._keep = []  # librealsense reads injected pixels after on_video_frame returns

    def _add(self, sensor, stream, fmt, bpp: int, uid: int):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid = stream, 0, uid
        vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = self.width, self.height, self.fps, bpp, fmt
        vs.intrinsics = _intrinsics(self.width, self.height)
        return sensor.add_video_stream(vs)

    def inject(self, index: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Inject :func:`frame` ``index``; returns it."""
        rgb, depth, t_ms = frame(index, self.width, self.height, self.fps)
        self.inject_arrays(rgb, depth, t_ms, index)
        return rgb, depth, t_ms

    def inject_arrays(self, rgb: np.ndarray, depth: np.ndarray, t_ms: float, index: int) -> None:
        """Inject one colour + depth pair captured at ``t_ms`` (system-time milliseconds)."""
        for sensor, profile, pixels, bpp in (
            (self.depth_sensor, self.depth_profile, depth, 2),
            (self.color_sensor, self.color_profile, rgb, 3),
        ):
            f = rs.software_video_frame()
            pixels = np.ascontiguousarray(pixels)
            self._keep = (self._keep + [pixels])[-8:]
            f.pixels, f.bpp, f.stride = pixels, bpp, self.width * bpp
            f.timestamp, f.domain, f.frame_number = t_ms, rs.timestamp_domain.system_time, index
            f.profile = profile.as_video_stream_profile()
            if sensor is self.depth_sensor:
                f.depth_units = 0.001
            sensor.on_video_frame(f)


def expected_aligned_patch_columns(index: int, width: int, height: int) -> tuple[int, int]:
    """First and last colour-image column of the depth patch of frame ``index`` after alignment
    (pinhole model: a point at Z metres moves fx * dx / Z pixels between the two cameras)."""
    c0 = width // 4 + index % 4
    shift = focal(width) * DEPTH_TO_COLOR_X_M / (PATCH_DEPTH_MM / 1000.0)
    return round(c0 + shift), round(c0 + width // 4 - 1 + shift)
