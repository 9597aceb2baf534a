"""Expert demos in the EE-delta action space: real ManiSkill3 planner, real Zarr stores."""

from __future__ import annotations

import numpy as np
import pytest
from stare_robot.sim.tasks import TASKS

# the motion-planner (Franka) tasks; the WidowX ones are tested in test_bridge_expert.py
FRANKA_TASKS = sorted(name for name, spec in TASKS.items() if spec.robot == "panda")

from stare_robot import keys
from stare_robot.data.store import EpisodeStore

pytestmark = pytest.mark.sim

PER_STEP = [
    keys.OBS_STATE,
    keys.OBS_JOINT_POS,
    keys.OBS_EE_POSE,
    keys.OBS_GRIPPER,
    keys.ACTION,
    keys.TIMESTAMP,
    keys.REWARD,
    keys.SIM_OBJ_POSE,
    keys.SIM_GOAL_POS,
    keys.SIM_IS_GRASPED,
    keys.SIM_CONTACT,
    keys.SIM_SUCCESS,
]
ATTRS = [
    keys.ATTR_TASK,
    keys.ATTR_ENV_ID,
    keys.ATTR_INSTRUCTION,
    keys.ATTR_ROBOT,
    keys.ATTR_SOURCE,
    keys.ATTR_SUCCESS,
    keys.ATTR_SEED,
    keys.ATTR_OBS_MODE,
    keys.ATTR_STAGE_FAMILY,
    keys.ATTR_CONTROL_RATE,
    keys.ATTR_ACTION_SPACE,
    keys.ATTR_CODE_VERSION,
    keys.SIM_OBJ_HALF_SIZE,
]


@pytest.mark.parametrize("task", FRANKA_TASKS)
def test_demos_are_successful_ee_delta_episodes(demo_store, task):
    store = EpisodeStore.open(demo_store(task, num=2, seed=0))
    episodes = list(store)
    assert len(episodes) == 2
    assert store.attrs[keys.ATTR_ACTION_SPACE] == keys.ACTION_SPACE_EE_DELTA
    seeds = []
    for ep in episodes:
        for attr in ATTRS:
            assert attr in ep.attrs, attr
        assert ep.attrs[keys.ATTR_SUCCESS] is True
        assert ep.attrs[keys.ATTR_TASK] == task
        assert ep.attrs[keys.ATTR_STAGE_FAMILY] == TASKS[task].stage_family
        assert ep.attrs[keys.ATTR_ROBOT] == "panda" and ep.attrs[keys.ATTR_SOURCE] == "sim"
        seeds.append(ep.attrs[keys.ATTR_SEED])
        data = ep.load()
        wanted = PER_STEP + [keys.OBS_ENV_STATE]
        if task == "StackCube-v1":
            wanted.append(keys.SIM_TARGET_POSE)
        T = len(ep)
        assert 3 < T < 120
        for key in wanted:
            assert key in data, key
            assert data[key].shape[0] == T, key
        action = data[keys.ACTION]
        assert action.shape == (T, keys.ACTION_DIM) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1.0 + 1e-6)  # the controller's normalised bounds
        assert np.all(np.linalg.norm(action[:, 3:6], axis=1) <= 1.0 + 1e-5)
        assert np.all(action[:, 6] <= 1.0) and np.all(action[:, 6] >= -1.0)
        # Only the last step may be successful: recording stops at the first success.
        assert data[keys.SIM_SUCCESS][-1] and not data[keys.SIM_SUCCESS][:-1].any()
        assert np.all(np.diff(data[keys.TIMESTAMP]) > 0)
        # Observations are the world-frame TCP pose and a 0..1 gripper opening.
        np.testing.assert_allclose(
            np.linalg.norm(data[keys.OBS_EE_POSE][:, 3:], axis=1), 1, atol=1e-4
        )
        assert data[keys.OBS_GRIPPER].min() >= 0 and data[keys.OBS_GRIPPER].max() <= 1
        # The demo moves the object (every task needs it displaced or re-oriented).
        obj = data[keys.SIM_OBJ_POSE]
        assert np.linalg.norm(obj[-1, :3] - obj[0, :3]) > 0.01 or not np.allclose(
            obj[-1, 3:], obj[0, 3:], atol=0.05
        )
        # Tasks that grasp must show a grasp; push/pull must touch the cube without grasping.
        assert not data[keys.SIM_CONTACT][0] and not data[keys.SIM_IS_GRASPED][0]  # starts apart
        if TASKS[task].stage_family == "push_pull":
            assert data[keys.SIM_CONTACT].any()
        else:
            assert data[keys.SIM_IS_GRASPED].any()
            closing = np.flatnonzero(action[:, 6] < 0)
            assert closing.size and data[keys.SIM_IS_GRASPED][closing[0] :].any()
    assert seeds == sorted(set(seeds)) and seeds[0] >= 0


def test_replaying_recorded_actions_reproduces_success(demo_store):
    from stare_robot.sim.replay import replay_episode

    for ep in EpisodeStore.open(demo_store("PushCube-v1", num=2, seed=0)):
        result = replay_episode(ep)
        assert result["success"] and result["num_steps"] == len(ep)
        assert result["max_obj_pos_error"] < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(set(FRANKA_TASKS) - {"PushCube-v1"}))
def test_replay_reproduces_success_for_every_task(demo_store, task):
    from stare_robot.sim.replay import replay_episode

    for ep in EpisodeStore.open(demo_store(task, num=2, seed=0)):
        result = replay_episode(ep)
        assert result["success"], (task, ep.attrs[keys.ATTR_SEED], result)


def test_replay_of_a_perturbed_episode_differs(demo_store, tmp_path):
    """Replay really executes the actions: zeroing them must lose the success."""
    from stare_robot.sim.replay import replay_episode

    ep = EpisodeStore.open(demo_store("PushCube-v1", num=2, seed=0))[0]

    class Zeroed:  # an episode view whose actions hold still
        attrs = ep.attrs

        def __contains__(self, key):
            return key in ep

        def __getitem__(self, key):
            data = np.asarray(ep[key][:])
            return np.zeros_like(data) if key == keys.ACTION else data

    result = replay_episode(Zeroed())
    assert not result["success"] and result["max_obj_pos_error"] > 0.01


def test_rgb_demos_record_images_and_no_env_state(demo_store):
    ep = EpisodeStore.open(demo_store("PushCube-v1", num=1, seed=0, obs_mode="rgb"))[0]
    assert ep.attrs[keys.ATTR_OBS_MODE] == "rgb"
    rgb = ep[keys.obs_rgb(keys.DEFAULT_CAMERA)]
    assert rgb.shape == (len(ep), 128, 128, 3) and rgb.dtype == np.uint8
    images = np.asarray(rgb[:])
    assert images.std() > 5  # a rendered scene, not a blank frame
    assert not np.array_equal(images[0], images[-1])  # the arm moved between first and last
    assert keys.OBS_ENV_STATE not in ep
    assert keys.SIM_OBJ_POSE in ep  # privileged state is still recorded for STARE


def test_generate_demos_retries_seeds_and_reports(tmp_path):
    from stare_robot.sim.demos import generate_demos

    summary = generate_demos(
        "PullCube-v1", 1, 7, tmp_path / "s.zarr", progress=False, max_attempts=3
    )
    assert summary["kept"] == 1 and summary["attempted"] >= 1
    assert summary["seeds"][0] >= 7
    assert summary["attempted"] == summary["kept"] + sum(summary["failed"].values())
    store = EpisodeStore.open(tmp_path / "s.zarr")
    assert [ep.attrs[keys.ATTR_SEED] for ep in store] == summary["seeds"]


@pytest.mark.sim
def test_a_pick_that_succeeds_without_grasping_is_not_kept(tmp_path):
    # PickCube seed 8 spawns the goal beside the cube: the planner "succeeds" without a grasp
    from stare_robot.sim.demos import generate_demos

    summary = generate_demos("PickCube-v1", num=1, seed=8, out=tmp_path / "p.zarr", progress=False)
    assert summary["failed"].get("succeeded without a grasp") == 1
    assert 8 not in summary["seeds"] and len(summary["seeds"]) == 1
