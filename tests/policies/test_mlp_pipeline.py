"""Training is policy-agnostic: the test-only MLP Gaussian policy goes SFT -> rollouts -> TPO ->
PPO on real ManiSkill3 PushCube-v1 (state mode) through the CLI's own functions."""

from __future__ import annotations

import shutil

import pytest
import torch
from mlp_policy import MLP_TYPE, MLPGaussianPolicy, MLPPolicyConfig

from stare_robot import keys
from stare_robot.policies import load_policy, register_policy, unregister_policy

TASK = "PushCube-v1"


@pytest.fixture(autouse=True)
def mlp_registered():
    register_policy(MLP_TYPE, MLPPolicyConfig, MLPGaussianPolicy)
    yield
    unregister_policy(MLP_TYPE)


def _changed(a, b) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.sim  # ~12 s here (demos, 60 SFT steps, 2 rollouts, 3 TPO steps, 1 PPO iteration)
def test_mlp_policy_goes_through_sft_tpo_and_ppo(demo_store, tmp_path):
    from stare_robot.sim.collect import collect_rollouts
    from stare_robot.sim.ppo import run_ppo

    from stare_robot.data.store import EpisodeStore
    from stare_robot.stages import annotate_episode
    from stare_robot.train.ppo import PPOArgs
    from stare_robot.train.preferences import make_pairs_file
    from stare_robot.train.sft import SFTArgs, run_sft
    from stare_robot.train.tpo import TPOArgs, run_tpo

    demos = tmp_path / "demos.zarr"
    shutil.copytree(demo_store(TASK, num=2, seed=0), demos, symlinks=True)
    for eid in EpisodeStore.open(demos).episode_ids():
        annotate_episode(EpisodeStore.open(demos), eid)

    sft = run_sft(
        SFTArgs(
            data=demos,
            out=tmp_path / "sft",
            policy=MLP_TYPE,
            steps=60,
            batch_size=8,
            warmup_steps=0,
            lr=1e-3,
            log_every=1,
            quiet=True,
        )
    )
    sft_policy = load_policy(sft["final"])
    assert type(sft_policy) is MLPGaussianPolicy and sft["config"].type == MLP_TYPE
    losses = [row["loss"] for row in sft["history"]]
    assert sum(losses[-5:]) < sum(losses[:5])  # it learns

    # rollouts store the policy's own records; demos are scored from their actions
    rollouts = tmp_path / "rollouts.zarr"
    summary = collect_rollouts(
        sft["final"], TASK, 2, rollouts, max_steps=6, execute_steps=2, progress=False
    )
    first = EpisodeStore.open(rollouts)[summary["episode_ids"][0]]
    assert first[keys.POLICY_SAMPLE].shape[1:] == sft_policy.record_shape
    make_pairs_file([demos, rollouts], tmp_path / "pairs.json")
    tpo = run_tpo(
        TPOArgs(
            ckpt=sft["final"],
            pairs=tmp_path / "pairs.json",
            out=tmp_path / "tpo",
            steps=3,
            warmup_steps=0,
            lr=1e-3,
            beta=0.5,
            min_pairs=1,
            quiet=True,
        )
    )
    tpo_policy = load_policy(tpo["final"])
    assert _changed(sft_policy, tpo_policy)

    ppo = run_ppo(
        PPOArgs(
            ckpt=tpo["final"],
            task=TASK,
            out=tmp_path / "ppo",
            iterations=1,
            episodes_per_iter=2,
            num_envs=1,
            max_steps=6,
            eval_every=0,
            value_warmup_iters=0,
            lr=1e-3,
            quiet=True,
        )
    )
    assert ppo["history"][-1]["updates"] >= 1
    assert _changed(tpo_policy, load_policy(ppo["final"]))
    assert (tmp_path / "ppo" / "value_head.safetensors").is_file()
