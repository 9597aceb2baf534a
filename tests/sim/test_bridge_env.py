"""The four SimplerEnv-WidowX envs build, reset and step from the asset pack (real ManiSkill3)."""

from __future__ import annotations

import numpy as np
import pytest
from stare_robot.sim.tasks import TASKS, WIDOWX

from stare_robot import keys

pytestmark = pytest.mark.sim

WIDOWX_TASKS = [name for name, spec in TASKS.items() if spec.robot == WIDOWX]


def test_every_widowx_task_builds_resets_and_steps(bridge_assets):
    from stare_robot.sim.env import make_env

    assert len(WIDOWX_TASKS) == 4
    for task in WIDOWX_TASKS:
        with make_env(task, obs_mode="rgb", image_size=64, sim_backend="physx_cpu") as env:
            assert env.robot == WIDOWX and env.control_rate_hz == 5.0
            step = env.reset(seed=0)
            obs, priv = step.obs, step.privileged
            image = obs[keys.obs_rgb("3rd_view_camera")]
            assert image.shape == (64, 64, 3) and image.dtype == np.uint8
            assert image.std() > 10, f"{task}: camera image is blank"
            assert obs[keys.OBS_STATE].shape == (16,)  # 6 arm + 2 finger joints, qpos then qvel
            assert obs[keys.INSTRUCTION] == env.spec.instruction
            assert not any(k.startswith(keys.SIM + "/") for k in obs)
            assert obs[keys.OBS_GRIPPER][0] == pytest.approx(1.0, abs=0.05)  # starts open
            # positions are relative to the surface the object rests on: it sits at its half height
            obj = priv[keys.SIM_OBJ_POSE]
            assert abs(obj[2] - env.spec.obj_half_size) < 0.01, (task, obj)
            goal, target = priv[keys.SIM_GOAL_POS], priv[keys.SIM_TARGET_POSE]
            np.testing.assert_allclose(goal[:2], target[:2], atol=1e-6)
            assert goal[2] > target[2]
            assert not priv[keys.SIM_IS_GRASPED] and not step.success

            # +0.5 on z is 5 cm up in our convention: the controller target moves exactly that
            before_target, before_ee = env.ee_target_pose(), obs[keys.OBS_EE_POSE]
            up = np.array([0, 0, 0.5, 0, 0, 0, keys.GRIPPER_OPEN], np.float32)
            step = env.step(up)
            np.testing.assert_allclose(env.ee_target_pose()[:3] - before_target[:3],
                                       [0, 0, 0.05], atol=1e-4)
            step = env.step(np.array([0, 0, 0, 0, 0, 0, keys.GRIPPER_OPEN], np.float32))
            assert step.obs[keys.OBS_EE_POSE][2] - before_ee[2] > 0.03, task


def test_maniskills_repeated_scene_warnings_are_shown_once(bridge_assets):
    """Every Bridge env build repeats two harmless ManiSkill warnings per actor; a long run (PPO
    workers rebuild envs) drowned its own log in hundreds of them."""
    import logging

    from mani_skill import logger
    from stare_robot.sim.env import make_env

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        for _ in range(2):
            with make_env("PutCarrotOnPlateInScene-v1", obs_mode="state",
                          sim_backend="physx_cpu") as env:
                env.reset(seed=0)
    finally:
        logger.removeHandler(handler)
    no_pose = [m for m in seen if m.startswith("No initial pose set")]
    mimic = [m for m in seen if m.startswith("Mimic targets dictionary")]
    assert len(no_pose) <= 1 and len(mimic) <= 1, seen
    assert all("not shown" in m for m in no_pose + mimic)
