"""The stage engine on real ManiSkill3 motion-planner demos and random-action rollouts."""

from __future__ import annotations

import numpy as np
import pytest

from stare_robot import keys, stages
from stare_robot.data.store import EpisodeStore
from stare_robot.stages.annotate import fields_needed, resolve_family

pytestmark = pytest.mark.sim

TASKS = ["PickCube-v1", "StackCube-v1", "PushCube-v1", "PullCube-v1", "LiftPegUpright-v1"]
NUM_DEMOS = 2


def load_episode(reader):
    fam = resolve_family(None, reader.attrs)
    wanted = fields_needed(fam) + [keys.SIM_SUCCESS]
    return fam, reader.load(dict.fromkeys(k for k in wanted if k in reader))


def command_change_steps(action: np.ndarray) -> list[int]:
    """First observation showing each change of the gripper command (the Panda starts open)."""
    closed = action[:, 6] < 0
    before = np.concatenate([[False], closed[:-1]])
    return [int(t) + 1 for t in np.flatnonzero(closed != before) if t + 1 < len(closed)]


@pytest.mark.parametrize("task", TASKS)
def test_successful_demos_pass_every_stage_in_order(task, demo_store):
    store = EpisodeStore.open(demo_store(task, num=NUM_DEMOS))
    assert len(store) == NUM_DEMOS
    for reader in store:
        assert reader.attrs[keys.ATTR_SUCCESS]
        fam, traj = load_episode(reader)
        seg = stages.run_separator(fam, traj)
        counts = np.bincount(seg.stage, minlength=fam.num_stages)
        assert np.all(np.diff(seg.stage) >= 0)
        assert np.all(counts > 0), f"{reader.episode_id}: steps per stage {counts.tolist()}"
        assert seg.stage[-1] == fam.num_stages - 1

        # keyframes fall where the gripper really changes: the first observation after each
        # change of the gripper command, and the grasp flag turns on right after a closing
        keyframes = stages.gripper_keyframes(traj)
        assert keyframes == command_change_steps(traj[keys.ACTION])
        if keys.SIM_IS_GRASPED in traj:
            first_grasp = int(np.argmax(traj[keys.SIM_IS_GRASPED][1:])) + 1
            assert keyframes and abs(first_grasp - keyframes[0]) <= 2

        # the online tracker, fed step by step, labels every step as the offline separator
        tracker = stages.StageTracker(fam)
        online = [tracker.update({k: v[t] for k, v in traj.items()}) for t in range(len(seg.stage))]
        assert online == seg.stage.tolist()


def test_annotate_real_demo_store(demo_store):
    path = demo_store("StackCube-v1", num=NUM_DEMOS)
    store = EpisodeStore.open(path)
    for episode_id in store.episode_ids():
        stages.annotate_episode(store, episode_id)
    for reader in EpisodeStore.open(path):
        fam, traj = load_episode(reader)
        assert reader[keys.STAGE][:].tolist() == stages.segment(fam, traj).tolist()
        assert reader.attrs[keys.ATTR_STAGE_NAMES] == list(fam.stage_names)
        assert reader.attrs[keys.ATTR_KEYFRAMES] == command_change_steps(traj[keys.ACTION])


def test_random_actions_mostly_stay_in_the_first_stage():
    from stare_robot.sim.env import make_env

    rng = np.random.default_rng(0)
    in_first, total, furthest = 0, 0, []
    for task in ["PickCube-v1", "PushCube-v1", "LiftPegUpright-v1"]:
        with make_env(task, obs_mode="state", sim_backend="physx_cpu") as env:
            for seed in range(2):
                step = env.reset(seed=seed)
                tracker = stages.StageTracker(env.spec.stage_family)
                for _ in range(30):
                    tracker.update({**step.privileged, keys.OBS_JOINT_POS: step.obs[keys.OBS_JOINT_POS]})
                    in_first += tracker.stage == 0
                    total += 1
                    step = env.step(rng.uniform(-1, 1, 7))
                furthest.append(tracker.stage)
    assert in_first / total > 0.5
    assert max(furthest) < 3  # random actions never get to the final stage
