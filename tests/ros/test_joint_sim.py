"""The library under the nodes, against ManiSkill3 itself (no ROS processes).

ManiSkill's ``pd_ee_delta_pose`` controller on the CPU does IK from the measured pose every step;
our commander must compute the very same joint targets, and our joint-position sim must then move
the TCP exactly as ManiSkill's EE controller does.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from stare_robot.robots import EEDeltaCommander, get_profile
from stare_robot.robots.ee_action import pose_distance

pytestmark = pytest.mark.sim

TASK, SEED, STEPS = "PushCube-v1", 3, 12


def _in_base(world_pose: np.ndarray, base: np.ndarray) -> np.ndarray:
    rb = Rotation.from_quat(base[[4, 5, 6, 3]])
    pos = rb.inv().apply(world_pose[:3] - base[:3])
    x, y, z, w = (rb.inv() * Rotation.from_quat(world_pose[[4, 5, 6, 3]])).as_quat()
    return np.array([*pos, w, x, y, z])


def test_commander_and_joint_sim_reproduce_maniskills_ee_controller():
    from stare_robot.sim.env import SimEnv
    from stare_robot_ros.joint_sim import JointSim

    profile = get_profile("panda")
    commander = EEDeltaCommander(profile)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.4, 0.4, (STEPS, 7)).astype(np.float32)
    actions[:, 6] = np.where(np.arange(STEPS) < STEPS // 2, 1.0, -1.0)  # close half-way

    ee = SimEnv(TASK, sim_backend="physx_cpu")
    step = ee.reset(seed=SEED, reconfigure=True)
    base = ee.base_pose
    arm = ee.base.agent.controller.controllers["arm"]
    sim = JointSim(TASK, profile)
    sim.reset(SEED)
    try:
        np.testing.assert_allclose(sim.joint_positions, step.obs["obs/joint_pos"], atol=1e-6)
        for a in actions:
            q = sim.joint_positions[:7]
            cmd = commander.command(q, a)
            # FK of the measured joints = ManiSkill's TCP pose (base frame)
            dp, dr = pose_distance(cmd.current_pose, _in_base(step.obs["obs/ee_pose"], base))
            assert dp < 1e-5 and dr < 1e-4
            step = ee.step(a)
            assert cmd.limited == ()
            # the joint targets ManiSkill's own controller chose for the same action
            np.testing.assert_allclose(cmd.q_target, arm._target_qpos.numpy()[0], atol=1e-4)
            sim.step(cmd.q_target, cmd.gripper)
            reached = commander.kinematics.forward(sim.joint_positions[:7])
            dp, dr = pose_distance(reached, _in_base(step.obs["obs/ee_pose"], base))
            assert dp < 2e-3 and dr < np.radians(2), (dp, dr)
        # the fingers closed in both (same gripper map)
        np.testing.assert_allclose(sim.joint_positions[7:], step.obs["obs/joint_pos"][7:], atol=2e-3)
        assert sim.joint_positions[7] < 0.02
    finally:
        ee.close()
        sim.close()


def test_joint_sim_camera_and_rate_config():
    from stare_robot_ros.joint_sim import JointSim, sim_config_for_rate

    assert sim_config_for_rate(15) == {"control_freq": 15, "sim_freq": 105}
    assert sim_config_for_rate(20) == {"control_freq": 20, "sim_freq": 100}
    with pytest.raises(ValueError, match="whole number"):
        sim_config_for_rate(12.5)
    sim = JointSim(TASK, get_profile("panda"), camera=True, image_size=64, control_rate_hz=10)
    try:
        sim.reset(0)
        assert sim.control_rate_hz == 10
        img = sim.image
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8 and img.std() > 1
        K = sim.camera_intrinsics
        assert K[0, 2] == pytest.approx(32) and K[1, 2] == pytest.approx(32) and K[2, 2] == 1
        with pytest.raises(ValueError, match="7 finite"):
            sim.step(np.full(7, np.nan))
    finally:
        sim.close()
