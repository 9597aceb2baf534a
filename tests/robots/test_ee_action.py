"""The pd_ee_delta_pose action convention, checked against math and the installed controller."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from stare_robot.robots.ee_action import (
    POS_BOUND,
    ROT_BOUND,
    action_to_pose_delta,
    pose_delta_to_action,
    pose_distance,
)


def _pose(p, rot: Rotation) -> np.ndarray:
    x, y, z, w = rot.as_quat()
    return np.array([*p, w, x, y, z])


@pytest.mark.parametrize("seed", range(5))
def test_small_delta_round_trips(seed):
    rng = np.random.default_rng(seed)
    current = _pose(rng.uniform(-0.5, 0.5, 3), Rotation.random(random_state=seed))
    dpos = rng.uniform(-0.05, 0.05, 3)
    drot = Rotation.from_rotvec(rng.normal(size=3) * 0.02)
    target = _pose(current[:3] + dpos, drot * Rotation.from_quat(np.roll(current[3:], -1)))
    action = pose_delta_to_action(current, target)
    assert np.all(np.abs(action) <= 1.0)
    got_pos, got_rot = action_to_pose_delta(action)
    np.testing.assert_allclose(got_pos, dpos, atol=1e-6)
    np.testing.assert_allclose(got_rot, drot.as_matrix(), atol=1e-6)


def test_large_delta_is_scaled_along_its_direction_within_bounds():
    current = _pose([0, 0, 0], Rotation.identity())
    target = _pose([0.4, -0.2, 0.0], Rotation.from_rotvec([0, 0, 1.0]))
    action = pose_delta_to_action(current, target)
    np.testing.assert_allclose(action[:3], [1.0, -0.5, 0.0], atol=1e-6)
    dpos, drot = action_to_pose_delta(action)
    assert np.isclose(np.linalg.norm(dpos), POS_BOUND * np.sqrt(1.25))
    assert np.isclose(Rotation.from_matrix(drot).magnitude(), ROT_BOUND, atol=1e-6)
    np.testing.assert_allclose(Rotation.from_matrix(drot).as_rotvec(), [0, 0, ROT_BOUND], atol=1e-6)


def test_gain_aims_further_but_stays_in_bounds():
    current = _pose([0, 0, 0], Rotation.identity())
    target = _pose([0.02, 0, 0], Rotation.identity())
    assert np.isclose(pose_delta_to_action(current, target, gain=2.0)[0], 0.4)
    assert np.isclose(pose_delta_to_action(current, target, gain=10.0)[0], 1.0)


def test_pose_distance():
    a = _pose([0, 0, 0], Rotation.identity())
    b = _pose([0.3, 0.4, 0], Rotation.from_rotvec([0.2, 0, 0]))
    dp, dr = pose_distance(a, b)
    assert np.isclose(dp, 0.5) and np.isclose(dr, 0.2, atol=1e-6)


@pytest.mark.sim
def test_controller_target_matches_the_convention():
    """ManiSkill's own controller must place its IK target where action_to_pose_delta says."""
    from stare_robot.sim.env import make_env

    with make_env("PushCube-v1", sim_backend="physx_cpu") as env:
        step = env.reset(seed=1)
        arm = env.base.agent.controller.controllers["arm"]
        base = env.base_pose
        before = step.privileged["obs/ee_pose"].astype(np.float64)
        action = np.array([0.3, -0.2, 0.5, 0.4, -0.6, 0.5, 1.0], np.float32)
        env.step(action)
        target = arm._target_pose.raw_pose[0].cpu().numpy().astype(np.float64)  # base frame
        dpos, drot = action_to_pose_delta(action)
        before_base = before.copy()
        before_base[:3] -= base[:3]  # the Panda's root is translated, not rotated
        np.testing.assert_allclose(target[:3], before_base[:3] + dpos, atol=2e-4)
        expected = Rotation.from_matrix(drot) * Rotation.from_quat(np.roll(before[3:], -1))
        got = Rotation.from_quat(np.roll(target[3:], -1))
        assert (got * expected.inv()).magnitude() < 2e-3
