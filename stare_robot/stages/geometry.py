"""Small vectorised geometry helpers shared by the stage families (pure numpy).

Every function works on a leading batch axis ``(T, ...)``; poses are ``[x, y, z, qw, qx, qy, qz]``.
"""

from __future__ import annotations

import numpy as np

UP = np.array([0.0, 0.0, 1.0])
_SIGMOID_ONE = 1.0 / (1.0 + np.exp(-1.0))  # sigma(1), the maximum of sigma(1 - d/scale) at d = 0


def sigmoid(x: np.ndarray) -> np.ndarray:
    # the tanh form never overflows: 1 / (1 + exp(-x)) warned for x < -709 (an object that fell
    # far off the table) though its value, 0, was right
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


def closeness(distance: np.ndarray, scale: float) -> np.ndarray:
    """Normalised ``sigma(1 - d/scale) / sigma(1)``: 1 at d = 0, 0.68 at d = scale, -> 0 far away."""
    return sigmoid(1.0 - distance / scale) / _SIGMOID_ONE


def norm(v: np.ndarray) -> np.ndarray:
    """(T, D) -> (T,) Euclidean length of each row."""
    return np.sqrt(np.einsum("...i,...i->...", v, v))


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vector(s) ``v`` (3,) or (T, 3) by unit quaternions ``q`` (T, 4) wxyz -> (T, 3).

    Written out component by component (v + 2w(u x v) + 2u x (u x v)): np.cross is slow."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    v = np.asarray(v)
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    tx = 2.0 * (y * vz - z * vy)  # t = 2 u x v
    ty = 2.0 * (z * vx - x * vz)
    tz = 2.0 * (x * vy - y * vx)
    return np.stack(
        [vx + w * tx + (y * tz - z * ty), vy + w * ty + (z * tx - x * tz), vz + w * tz + (x * ty - y * tx)],
        axis=-1,
    )


def axis_angle_to_vertical(axis: np.ndarray) -> np.ndarray:
    """(T, 3) unit axes -> (T,) angle in [0, pi/2] between the (unsigned) axis and vertical."""
    return np.arccos(np.clip(np.abs(axis[..., 2]), 0.0, 1.0))


def flatness(q: np.ndarray) -> np.ndarray:
    """(T, 4) cube orientations -> (T,) in [0, 1]: |cos| between vertical and the cube's closest
    face normal (1 = resting on a face; a cube is symmetric, so any face counts)."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    # the bottom row of the rotation matrix: the z components of the cube's three axes
    zx, zy, zz = 2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)
    return np.minimum(np.maximum(np.maximum(np.abs(zx), np.abs(zy)), np.abs(zz)), 1.0)


def point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 3) points to (T, 3)-(T, 3) segments -> (T,) distance to the closest segment point."""
    ab = b - a
    denom = np.maximum(np.einsum("...i,...i->...", ab, ab), 1e-12)
    s = np.clip(np.einsum("...i,...i->...", p - a, ab) / denom, 0.0, 1.0)
    return norm(p - (a + s[..., None] * ab))


def unit_xy(v: np.ndarray) -> np.ndarray:
    """(T, >=2) -> (T, 2) unit vector of the xy part (zero vectors map to +x)."""
    xy = v[..., :2]
    n = norm(xy)[..., None]
    return np.where(n > 1e-9, xy / np.maximum(n, 1e-9), np.array([1.0, 0.0]))


def cross_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 2) x (T, 2) -> (T,) z component of the 2-D cross product (signed perpendicular)."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def as_float(x) -> np.ndarray:
    """The array as stored if it is already floating point (float32 stays float32: no copy),
    else as float64."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)
