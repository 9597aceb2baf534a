"""The 7-D ``pd_ee_delta_pose`` action convention of ManiSkill3 3.0.1's Panda, both directions.

A stored action is exactly what the env consumes: normalised to [-1, 1].

- ``action[0:3]`` position delta of the TCP in the robot-base frame, scaled: metres = 0.1 * a.
- ``action[3:6]`` rotation delta, applied on the left of the TCP orientation in the robot-base frame
  ("root_aligned_body_rotation"). The controller clips the 3-vector to norm <= 1, multiplies it by
  its ``rot_lower`` bound (-0.1 rad, so the sign is flipped) and reads the result as intrinsic
  XYZ Euler angles. So a rotation R is commanded by ``a = -euler_XYZ(R) / 0.1``.
- ``action[6]`` gripper: +1 open, -1 closed (ManiSkill's convention).

Checked against the installed controller in tests/robots/test_ee_action.py.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

POS_BOUND = 0.1  # metres per step at |a| = 1 (Panda arm_pd_ee_delta_pose pos_lower/upper)
ROT_BOUND = 0.1  # radians per step at |a| = 1 (rot_lower/upper)
# ManiSkill multiplies the normalised rotation by rot_lower (= -ROT_BOUND), flipping its sign.
_ROT_SIGN = -1.0


def _rotation(quat_wxyz: np.ndarray) -> Rotation:
    w, x, y, z = np.asarray(quat_wxyz, dtype=np.float64)
    return Rotation.from_quat([x, y, z, w])


def pose_delta_to_action(
    current: np.ndarray, target: np.ndarray, base: np.ndarray | None = None, gain: float = 1.0
) -> np.ndarray:
    """Normalised 6-D arm action moving the TCP from ``current`` to ``target`` in one step.

    ``current``, ``target``, ``base``: (7,) world-frame poses ``[x, y, z, qw, qx, qy, qz]``
    (``base`` = robot root pose, identity when None); ``gain`` scales the delta before clipping
    (> 1 compensates for a controller that falls short of its per-step target). Returns (6,) float32 in [-1, 1]: a delta
    larger than the controller allows is scaled down along its own direction (position and
    rotation separately), so the step still heads straight for the target.
    """
    base_rot = _rotation(base[3:]) if base is not None else Rotation.identity()
    # The controller works in the robot-base frame: express both poses there.
    dpos = base_rot.inv().apply(np.asarray(target[:3], np.float64) - np.asarray(current[:3]))
    cur = base_rot.inv() * _rotation(current[3:])
    tgt = base_rot.inv() * _rotation(target[3:])
    drot = tgt * cur.inv()  # root-aligned: target = drot * current
    if gain != 1.0:
        dpos = dpos * gain
        drot = Rotation.from_rotvec(drot.as_rotvec() * gain)

    pos = dpos / POS_BOUND
    biggest = np.abs(pos).max()
    if biggest > 1.0:
        pos = pos / biggest
    rotvec = drot.as_rotvec()
    angle = np.linalg.norm(rotvec)
    if angle > ROT_BOUND:  # shorten the rotation itself, then express it as Euler angles
        drot = Rotation.from_rotvec(rotvec * (ROT_BOUND / angle))
    rot = _ROT_SIGN * drot.as_euler("XYZ") / ROT_BOUND
    norm = np.linalg.norm(rot)
    if norm > 1.0:  # Euler angles of a 0.1 rad rotation can exceed norm 1 by rounding
        rot = rot / norm
    return np.concatenate([pos, rot]).astype(np.float32)


def action_to_pose_delta(action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the controller does with a normalised action: ``(dpos (3,) metres, drot (3, 3))``.

    Both are in the robot-base frame; the new target pose is ``p + dpos``, ``drot @ R``.
    """
    a = np.asarray(action, dtype=np.float64)
    pos = np.clip(a[:3], -1.0, 1.0) * POS_BOUND
    rot = a[3:6].copy()
    norm = np.linalg.norm(rot)
    if norm > 1.0:
        rot = rot / norm
    drot = Rotation.from_euler("XYZ", _ROT_SIGN * ROT_BOUND * rot).as_matrix()
    return pos, drot


def pose_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(metres, radians) between two (7,) poses ``[xyz, wxyz]``."""
    dp = float(np.linalg.norm(np.asarray(a[:3]) - np.asarray(b[:3])))
    dq = abs(float(np.dot(a[3:] / np.linalg.norm(a[3:]), b[3:] / np.linalg.norm(b[3:]))))
    return dp, 2.0 * float(np.arccos(min(1.0, dq)))
