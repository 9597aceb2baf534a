"""Small hand-made trajectories for the stage-engine tests (test helpers, never library code).

Each builder returns ``(traj, expected_stage)``: a trajectory dict keyed by stare_robot.keys and
the stage labels a person derived from the story told in its docstring.
"""

from __future__ import annotations

import numpy as np

from stare_robot import keys

IDENTITY_Q = np.array([1.0, 0.0, 0.0, 0.0])


def poses(xyz, q=IDENTITY_Q) -> np.ndarray:
    """(T, 3) positions (+ one or (T, 4) quaternions) -> (T, 7) poses."""
    xyz = np.asarray(xyz, dtype=np.float64)
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), (len(xyz), 4))
    return np.concatenate([xyz, q], axis=1)


def pick_place_trajectory():
    """TCP descends onto a resting cube (0.1, 0, 0.02), touches it at step 3, grasps at 4, lifts it
    at step 5 and carries it along a straight line to the goal (0.1, 0.2, 0.1), arriving at step 9
    and holding it there. Goal margin 0.05 is first met at step 8 (distance 0.0418)."""
    obj = [[0.1, 0, 0.02]] * 5 + [[0.1, 0.0, 0.04], [0.1, 0.05, 0.055], [0.1, 0.1, 0.07],
                                  [0.1, 0.16, 0.088], [0.1, 0.2, 0.1], [0.1, 0.2, 0.1], [0.1, 0.2, 0.1]]
    ee = [[0.1, 0, 0.2], [0.1, 0, 0.12], [0.1, 0, 0.06]] + obj[3:]
    n = len(obj)
    t = np.arange(n)
    traj = {
        keys.OBS_EE_POSE: poses(ee),
        keys.SIM_OBJ_POSE: poses(obj),
        keys.SIM_GOAL_POS: np.tile([0.1, 0.2, 0.1], (n, 1)),
        keys.SIM_CONTACT: t >= 3,
        keys.SIM_IS_GRASPED: t >= 4,
    }
    expected = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    return traj, expected


def stack_trajectory():
    """Cube A at (0, 0, 0.02), cube B at (0, 0.1, 0.02): goal = B + (0, 0, 0.04). The TCP touches
    and grasps A at step 2, lifts it at 3, carries it over B (within 0.05 of the goal from step 5),
    sets it down at step 6 and lets go at step 7."""
    obj = [[0, 0, 0.02]] * 3 + [[0, 0, 0.05], [0, 0.05, 0.08], [0, 0.09, 0.07], [0, 0.1, 0.06],
                                [0, 0.1, 0.06], [0, 0.1, 0.06]]
    ee = [[0, 0, 0.15], [0, 0, 0.08]] + obj[2:7] + [[0, 0.1, 0.09], [0, 0.1, 0.12]]
    n = len(obj)
    t = np.arange(n)
    traj = {
        keys.OBS_EE_POSE: poses(ee),
        keys.SIM_OBJ_POSE: poses(obj),
        keys.SIM_TARGET_POSE: poses([[0, 0.1, 0.02]] * n),
        keys.SIM_CONTACT: (t >= 2) & (t <= 6),
        keys.SIM_IS_GRASPED: (t >= 2) & (t <= 6),
    }
    expected = np.array([0, 0, 1, 2, 2, 3, 3, 3, 3])
    return traj, expected


def push_trajectory():
    """Cube at (0, 0, 0.02), goal (0.2, 0, 0.02): push direction +x, push point (-0.03, 0, 0.02).
    The TCP comes from behind, is within 5 cm of the push point from step 2, on it at step 3
    (contact flag from step 4); the cube moves 2 cm by step 5 and enters the goal region
    (< 0.1 m from the goal) at step 8."""
    ee_x = [-0.15, -0.11, -0.07, -0.03, -0.03, -0.01, 0.02, 0.05, 0.08, 0.08]
    obj_x = [0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.05, 0.08, 0.11, 0.11]
    n = len(ee_x)
    t = np.arange(n)
    traj = {
        keys.OBS_EE_POSE: poses([[x, 0, 0.02] for x in ee_x]),
        keys.SIM_OBJ_POSE: poses([[x, 0, 0.02] for x in obj_x]),
        keys.SIM_GOAL_POS: np.tile([0.2, 0, 0.02], (n, 1)),
        keys.SIM_CONTACT: t >= 4,
    }
    expected = np.array([0, 0, 1, 1, 1, 2, 2, 2, 3, 3])
    return traj, expected


def peg_quaternion(angle_from_horizontal: float) -> np.ndarray:
    """Peg long axis (its local x) tilted up by the angle: a rotation about the world y axis."""
    half = -angle_from_horizontal / 2  # rotating +x toward +z is a negative turn about y
    return np.array([np.cos(half), 0.0, np.sin(half), 0.0])


def lift_trajectory():
    """A peg (half length 0.12, half width 0.025) lies at (0, 0, 0.025). The TCP reaches a point
    0.1 along its axis at step 2 (contact + grasp), lifts it 2 cm at 3, 6 cm at 4 (past the 5 cm
    clearance), turns it up and stands it on its end (centre at z = 0.12) at step 7."""
    angles = [0, 0, 0, 0, 0, np.pi / 4, np.pi / 2 - 0.05, np.pi / 2]
    z = [0.025, 0.025, 0.025, 0.045, 0.085, 0.15, 0.13, 0.12]
    n = len(z)
    obj = poses([[0, 0, h] for h in z], np.stack([peg_quaternion(a) for a in angles]))
    ee = [[0.1, 0, 0.2], [0.1, 0, 0.1], [0.1, 0, 0.025], [0.1, 0, 0.045], [0.1, 0, 0.085],
          [0.0, 0, 0.25], [0, 0, 0.25], [0, 0, 0.24]]
    t = np.arange(n)
    traj = {
        keys.OBS_EE_POSE: poses(ee),
        keys.SIM_OBJ_POSE: obj,
        keys.SIM_CONTACT: t >= 2,
        keys.SIM_IS_GRASPED: (t >= 2) & (t <= 6),
    }
    expected = np.array([0, 0, 1, 2, 3, 3, 3, 3])
    return traj, expected


def gripper_trajectory():
    """Open (1.0) for 4 steps, closes on a cube (0.5 from step 4), holds, opens from step 10."""
    opening = [1.0, 1.0, 1.0, 1.0, 0.55, 0.5, 0.5, 0.5, 0.5, 0.5, 0.7, 0.9, 1.0, 1.0]
    n = len(opening)
    traj = {
        keys.OBS_GRIPPER: np.asarray(opening)[:, None],
        keys.OBS_JOINT_POS: np.arange(n * 9, dtype=np.float64).reshape(n, 9) / 100,
    }
    # keyframes 4 and 10; with min_hold = 2 a change is confirmed one step later
    expected = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2])
    return traj, expected


BUILDERS = {
    "pick_place": pick_place_trajectory,
    "stack": stack_trajectory,
    "push_pull": push_trajectory,
    "lift_upright": lift_trajectory,
    "gripper": gripper_trajectory,
}


def random_trajectory(family: str, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Random (but well-formed) fields for ``family``: random walks and random flags, to exercise
    every branch of the rules. Quaternions are random unit quaternions."""
    def walk(scale=0.02, start=(0.0, 0.0, 0.05)):
        return np.asarray(start) + np.cumsum(rng.normal(0, scale, (n, 3)), axis=0)

    def quats():
        q = rng.normal(size=(n, 4))
        return q / np.linalg.norm(q, axis=1, keepdims=True)

    traj = {
        keys.OBS_EE_POSE: poses(walk(start=(0, 0, 0.1))),
        keys.SIM_OBJ_POSE: poses(walk(0.01, (0.0, 0.0, 0.03)), quats()),
        keys.SIM_GOAL_POS: np.tile(rng.uniform(-0.1, 0.1, 3), (n, 1)),
        keys.SIM_TARGET_POSE: poses(np.tile(rng.uniform(-0.1, 0.1, 3), (n, 1))),
        keys.SIM_CONTACT: rng.random(n) < 0.5,
        keys.SIM_IS_GRASPED: rng.random(n) < 0.5,
        keys.SIM_SUCCESS: rng.random(n) < 0.1,
        keys.OBS_GRIPPER: rng.random((n, 1)),
        keys.OBS_JOINT_POS: rng.normal(size=(n, 9)),
        keys.ACTION: rng.uniform(-1, 1, (n, 7)),
    }
    if rng.random() < 0.5:  # sometimes lying still near the object, so later stages happen
        traj[keys.OBS_EE_POSE][:, :3] = traj[keys.SIM_OBJ_POSE][:, :3] + rng.normal(0, 0.01, (n, 3))
    return traj
