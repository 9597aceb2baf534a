"""Small vectorised geometry helpers shared by the stage families (pure numpy).

Every function works on a leading batch axis ``(T, ...)``; poses are ``[x, y, z, qw, qx, qy, qz]``.
"""

from __future__ import annotations

import numpy as np

UP = np.array([0.0, 0.0, 1.0])
_SIGMOID_ONE = 1.0 / (1.0 + np.exp(-1.0))  # sigma(1), the maximum of sigma(1 - d/scale) at d = 0


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def closeness(distance: np.ndarray, scale: float) -> np.ndarray:
    """Normalised ``sigma(1 - d/scale) / sigma(1)``: 1 at d = 0, 0.68 at d = scale, -> 0 far away."""
    return sigmoid(1.0 - distance / scale) / _SIGMOID_ONE


def norm(v: np.ndarray) -> np.ndarray:
    """(T, D) -> (T,) Euclidean length of each row."""
    return np.sqrt(np.einsum("...i,...i->...", v, v))


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vector(s) ``v`` (3,) or (T, 3) by unit quaternions ``q`` (T, 4) wxyz -> (T, 3)."""
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * np.cross(u, np.broadcast_to(v, u.shape))
    return v + w * t + np.cross(u, t)


def axis_angle_to_vertical(axis: np.ndarray) -> np.ndarray:
    """(T, 3) unit axes -> (T,) angle in [0, pi/2] between the (unsigned) axis and vertical."""
    return np.arccos(np.clip(np.abs(axis[..., 2]), 0.0, 1.0))


def flatness(q: np.ndarray) -> np.ndarray:
    """(T, 4) cube orientations -> (T,) in [0, 1]: |cos| between vertical and the cube's closest
    face normal (1 = resting on a face; a cube is symmetric, so any face counts)."""
    axes = np.stack([quat_rotate(q, e) for e in np.eye(3)], axis=-1)  # (T, 3, 3) columns = axes
    return np.abs(axes[..., 2, :]).max(axis=-1)


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
