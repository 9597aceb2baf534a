"""The env wrapper: policy-visible vs privileged observations."""

from __future__ import annotations

import numpy as np
import pytest
from stare_robot.sim.env import make_env

from stare_robot import keys

pytestmark = pytest.mark.sim


def test_rgb_obs_hides_privileged_state_and_privileged_dict_has_it():
    with make_env("StackCube-v1", obs_mode="rgb", image_size=64, sim_backend="physx_cpu") as env:
        step = env.reset(seed=0)
        for s in (step, env.step(np.zeros(7, np.float32))):
            obs = s.obs
            assert not any(k.startswith(keys.SIM + "/") for k in obs)
            assert keys.OBS_ENV_STATE not in obs
            image = obs[keys.obs_rgb(keys.DEFAULT_CAMERA)]
            assert image.shape == (64, 64, 3) and image.dtype == np.uint8
            assert obs[keys.INSTRUCTION] == env.spec.instruction
            assert obs[keys.OBS_STATE].shape == (18,) and obs[keys.OBS_STATE].dtype == np.float32
            priv = s.privileged
            for key in (
                keys.SIM_OBJ_POSE,
                keys.SIM_TARGET_POSE,
                keys.SIM_GOAL_POS,
                keys.SIM_IS_GRASPED,
                keys.SIM_CONTACT,
                keys.SIM_SUCCESS,
                keys.OBS_EE_POSE,
                keys.OBS_GRIPPER,
            ):
                assert key in priv, key
            # The stack goal sits one cube height above the lower cube.
            np.testing.assert_allclose(
                priv[keys.SIM_GOAL_POS], priv[keys.SIM_TARGET_POSE][:3] + [0, 0, 0.04], atol=1e-6
            )
            assert isinstance(s.success, bool) and isinstance(s.reward, float)


def test_state_obs_and_same_seed_same_start():
    with make_env("LiftPegUpright-v1", sim_backend="physx_cpu") as env:
        a = env.reset(seed=3)
        b = env.reset(seed=3)
        c = env.reset(seed=4)
        assert a.obs[keys.OBS_ENV_STATE].ndim == 1
        np.testing.assert_array_equal(
            a.privileged[keys.SIM_OBJ_POSE], b.privileged[keys.SIM_OBJ_POSE]
        )
        assert not np.allclose(a.privileged[keys.SIM_OBJ_POSE], c.privileged[keys.SIM_OBJ_POSE])
        assert np.isnan(a.privileged[keys.SIM_GOAL_POS]).all()  # no goal position for this task
        assert a.obs[keys.OBS_GRIPPER][0] > 0.9  # the Panda starts open


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="valid: state, rgb"):
        make_env("PushCube-v1", obs_mode="depth")
    with pytest.raises(ValueError, match="Did you mean 'PullCube-v1'"):
        make_env("PullCub-v1")
    with make_env("PushCube-v1", sim_backend="physx_cpu") as env:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="7 finite numbers"):
            env.step(np.zeros(6))
