"""The TPO / STA-TPO trainer: where gradients go, bad input, and learning on real rollouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from preference_fakes import ENV_STATE_DIM, make_store

from stare_robot import keys
from stare_robot.policies import load_policy, make_config, make_policy
from stare_robot.policies.normalize import NormalizationStats
from stare_robot.train.preferences import PreferenceError, load_pairs, make_pairs_file
from stare_robot.train.tpo import (
    PreferenceObjective,
    ReferenceMismatch,
    TPOArgs,
    main,
    run_tpo,
)

EPISODES = [
    {"task": "A", "success": True, "closes_at": 4, "opens_at": 10},
    {"task": "A", "success": True, "closes_at": 5, "opens_at": 11},
    {"task": "A", "success": False, "closes_at": 4, "opens_at": None},
    {"task": "A", "success": False, "closes_at": None, "opens_at": None},
]


def tiny_policy(policy_type: str, stats_arrays: dict, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = make_config(
        policy_type,
        obs_mode="state",
        env_state_dim=overrides.pop("env_state_dim", ENV_STATE_DIM),
        use_stake=False,
        **overrides,
    )
    return make_policy(config, NormalizationStats.from_arrays(stats_arrays))


def store_stats(path: Path) -> dict:
    from stare_robot.data.store import EpisodeStore

    store = EpisodeStore.open(path)
    wanted = (keys.OBS_STATE, keys.OBS_ENV_STATE, keys.ACTION)
    return {k: np.concatenate([store[e][k][:] for e in store.episode_ids()]) for k in wanted}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A recorded-episode store, its pairs file and a token-head checkpoint fitting it."""
    root = tmp_path_factory.mktemp("tpo")
    store = make_store(root / "eps.zarr", EPISODES)
    pairs = root / "pairs.json"
    make_pairs_file([store], pairs)
    ckpt = tiny_policy("pi0_tokens", store_stats(store), num_bins=32).save_pretrained(root / "ckpt")
    return {"root": root, "store": store, "pairs": pairs, "ckpt": ckpt}


def test_gradients_reach_only_the_trainable_policy(recorded):
    policy, ref = load_policy(recorded["ckpt"]), load_policy(recorded["ckpt"])
    ref_before = {k: v.clone() for k, v in ref.state_dict().items()}
    objective = PreferenceObjective(
        policy,
        ref,
        load_pairs(recorded["pairs"]),
        stage_aware=True,
        beta=0.5,
        lam=1.0,
        noise_std=0.1,
    )
    # the objective owns exactly the policy's parameters; the reference is cached tensors
    assert {id(p) for p in objective.parameters()} == {id(p) for p in policy.parameters()}
    assert all(not t.requires_grad for t in objective.ref_logp)
    policy.train()
    losses = objective.training_losses({"pair_index": torch.arange(len(objective.pairs))})
    losses["loss"].backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in ref.parameters())
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(v, ref_before[k])
    # per-stage margins are logged for the gripper family's stages
    assert {"margin_approach", "margin_skill", "margin_retreat", "pref_accuracy"} <= set(losses)


def test_trainer_runs_resumes_and_writes_the_preference_evaluation(recorded, tmp_path):
    out = tmp_path / "run"
    args = TPOArgs(
        ckpt=recorded["ckpt"],
        pairs=recorded["pairs"],
        out=out,
        steps=4,
        save_every=2,
        lr=1e-3,
        quiet=True,
    )
    summary = run_tpo(args)
    assert (out / "final" / "config.json").is_file() and (out / "preference_eval.json").is_file()
    assert summary["eval_before"]["accuracy"] == pytest.approx(0.5)  # policy == reference: ties
    assert summary["eval_after"]["accuracy"] > 0.5 and summary["eval_after"]["mean_margin"] > 0
    resumed = run_tpo(TPOArgs(**{**vars(args), "steps": 6, "resume": True}))
    assert [h["step"] for h in resumed["history"]] == list(range(1, 7))
    assert resumed["history"][:4] == summary["history"][:4]


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_policy(a).state_dict(), load_policy(b).state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_success_anchor_adds_minus_the_successful_preferred_log_ratio(recorded):
    from stare_robot.train.tpo import episode_log_probs

    policy, ref = load_policy(recorded["ckpt"]), load_policy(recorded["ckpt"])
    torch.manual_seed(1)
    with torch.no_grad():  # move the policy off its reference so the log-ratios are not zero
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pairs = load_pairs(recorded["pairs"])
    objective = PreferenceObjective(policy, ref, pairs, True, 0.5, 1.0, 0.1, anchor=2.0)
    policy.eval()
    losses = objective.training_losses({"pair_index": torch.arange(len(pairs))})
    with torch.no_grad():
        logps = episode_log_probs(policy, objective.episodes, 0.1)
    q = [float((lp - r).mean()) for lp, r in zip(logps, objective.ref_logp)]
    chosen = [
        objective.index[(p.chosen.store, p.chosen.episode)] for p in pairs if p.chosen.success
    ]
    assert chosen and len(chosen) < len(pairs)  # the failure-by-progress pair is left out
    expected = -sum(q[i] for i in chosen) / len(chosen)
    assert abs(expected) > 1e-4
    assert float(losses["anchor_loss"]) == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert float(losses["loss"].detach()) == pytest.approx(
        float(losses["pref_loss"]) + 2.0 * expected, rel=1e-4, abs=1e-6
    )


def test_too_few_pairs_keep_the_starting_weights_and_say_so(recorded, tmp_path, capsys):
    n = len(load_pairs(recorded["pairs"]))
    out = tmp_path / "run"
    argv = ["--ckpt", str(recorded["ckpt"]), "--pairs", str(recorded["pairs"]), "--out", str(out)]
    assert main([*argv, "--min-pairs", str(n + 1), "--quiet"]) == 0
    assert "not trained" in capsys.readouterr().out
    assert same_weights(out / "final", recorded["ckpt"])
    doc = json.loads((out / "preference_eval.json").read_text())
    assert doc["kept_reference"] and f"{n} training pairs < --min-pairs {n + 1}" in doc["reason"]


def test_selection_on_held_out_pairs_keeps_the_start_when_training_only_hurts(recorded, tmp_path):
    """Held-out pairs that contradict the training pairs (every pair reversed): training ranks
    them worse and worse, so the starting weights are kept; scored on pairs that agree with
    training, a trained checkpoint is kept."""
    from stare_robot.train.preferences import PreferencePair, save_pairs

    reversed_pairs = [
        PreferencePair(p.rejected, p.chosen, p.kind) for p in load_pairs(recorded["pairs"])
    ]
    contradicting = save_pairs(reversed_pairs, tmp_path / "reversed.json", {})
    common = {"ckpt": recorded["ckpt"], "pairs": recorded["pairs"], "steps": 4, "lr": 1e-3}
    common["select_every"] = 2
    hurt = run_tpo(TPOArgs(**common, eval_pairs=contradicting, out=tmp_path / "hurt", quiet=True))
    assert [r["step"] for r in hurt["selection"]] == [0, 2, 4]
    assert hurt["selection"][-1]["accuracy"] < 0.5
    assert hurt["selected_step"] == 0 and hurt["kept_reference"]
    assert same_weights(tmp_path / "hurt" / "final", recorded["ckpt"])

    helped = run_tpo(
        TPOArgs(**common, eval_pairs=recorded["pairs"], out=tmp_path / "helped", quiet=True)
    )
    assert helped["selected_step"] in (2, 4) and helped["eval_after"]["accuracy"] > 0.5
    assert not same_weights(tmp_path / "helped" / "final", recorded["ckpt"])


def test_reference_of_another_architecture_is_a_clear_error(recorded, tmp_path, capsys):
    other = tiny_policy("pi0_tokens", store_stats(recorded["store"]), num_bins=16)
    other_ckpt = other.save_pretrained(tmp_path / "other")
    code = main(
        [
            "--ckpt",
            str(recorded["ckpt"]),
            "--ref",
            str(other_ckpt),
            "--pairs",
            str(recorded["pairs"]),
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "reference checkpoint differs" in err and "'num_bins'" in err
    with pytest.raises(ReferenceMismatch, match="'type'"):
        flow = tiny_policy("pi0", store_stats(recorded["store"]))
        PreferenceObjective(
            load_policy(recorded["ckpt"]), flow, load_pairs(recorded["pairs"]), True, 0.1, 1.0, 0.1
        )


def test_flow_head_on_episodes_without_a_recorded_chain_is_a_clear_error(recorded, tmp_path):
    flow = tiny_policy("pi0", store_stats(recorded["store"]))
    with pytest.raises(PreferenceError, match="denoising chain recorded at collection"):
        PreferenceObjective(flow, flow, load_pairs(recorded["pairs"]), True, 0.1, 1.0, 0.1)


@pytest.mark.sim
@pytest.mark.slow  # ~45 s on the shared 2 cores (expert demos + rollouts + training)
def test_training_raises_held_out_preference_accuracy_on_real_rollouts(demo_store, tmp_path):
    """Expert demos (successes) vs sampled rollouts of an untrained policy (failures) in
    PushCube-v1: after a few STA-TPO steps, held-out pairs are ranked better than at the start."""
    from stare_robot.sim.collect import collect_rollouts, query_seed

    from stare_robot.data.store import EpisodeStore
    from stare_robot.policies.protocol import sample_for_rollout
    from stare_robot.stages import annotate_episode

    demos = tmp_path / "demos.zarr"
    shutil.copytree(demo_store("PushCube-v1", num=4, seed=0), demos, symlinks=True)
    demo_ids = EpisodeStore.open(demos).episode_ids()
    for eid in demo_ids:
        annotate_episode(EpisodeStore.open(demos), eid)
    stats = store_stats(demos)
    env_dim = stats[keys.OBS_ENV_STATE].shape[1]
    ckpt = tiny_policy("pi0_tokens", stats, num_bins=32, env_state_dim=env_dim).save_pretrained(
        tmp_path / "ckpt"
    )

    rollouts = tmp_path / "rollouts.zarr"
    summary = collect_rollouts(
        ckpt, "PushCube-v1", 4, rollouts, seed=20_000, max_steps=6, execute_steps=2, progress=False
    )
    assert summary["successes"] == [False] * 4
    store = EpisodeStore.open(rollouts)
    policy = load_policy(ckpt)
    first = store[summary["episode_ids"][0]]
    assert first[keys.POLICY_SAMPLE].shape == (6, *policy.record_shape)
    assert first[keys.POLICY_QUERY_STEP][:].tolist() == [0, 0, 2, 2, 4, 4]
    assert first.attrs[keys.ATTR_STAGE_FAMILY] == "push_pull" and len(first[keys.STAGE][:]) == 6
    # the stored sample is what the seeded sampler draws again from the stored observation
    obs = {k: first[k][0] for k in policy.metadata.inputs}
    obs[keys.INSTRUCTION] = first.attrs[keys.ATTR_INSTRUCTION]
    action, sample = sample_for_rollout(policy, obs, query_seed(20_000, 0))
    np.testing.assert_allclose(sample, first[keys.POLICY_SAMPLE][0], atol=1e-6)
    np.testing.assert_allclose(action[:2], first[keys.ACTION][:2], atol=1e-5)

    # train on demos 0-1 vs rollouts 0-1, hold out demos 2-3 vs rollouts 2-3
    def split(part: slice, name: str) -> Path:
        subsets = []
        for src, ids in ((demos, demo_ids), (rollouts, summary["episode_ids"])):
            dst = EpisodeStore.create(tmp_path / f"{name}_{src.stem}.zarr")
            for eid in ids[part]:
                reader = EpisodeStore.open(src)[eid]
                attrs = {k: v for k, v in reader.attrs.items() if k != keys.ATTR_NUM_STEPS}
                with dst.new_episode(attrs=attrs) as ep:
                    ep.extend(reader.load())
            subsets.append(dst.root)
        out = tmp_path / f"{name}.json"
        make_pairs_file(subsets, out)
        return out

    train_pairs, held_out = split(slice(0, 2), "train"), split(slice(2, 4), "held")
    result = run_tpo(
        TPOArgs(
            ckpt=ckpt,
            pairs=train_pairs,
            eval_pairs=held_out,
            out=tmp_path / "run",
            steps=12,
            lr=1e-3,
            beta=0.5,
            quiet=True,
        )
    )
    before, after = result["eval_before"], result["eval_after"]
    assert before["pairs"] == after["pairs"] >= 4  # 2 demos x 2 rollouts, + cost-ordered
    assert after["accuracy"] > before["accuracy"]
    assert after["mean_margin"] > 0


@pytest.mark.sim
def test_collection_goes_on_until_both_outcomes_are_present_or_the_limit(demo_store, tmp_path):
    """An untrained policy cannot succeed in 2 steps: asked for 1 episode and at least one of
    each outcome, collection extends over the next seeds up to max_num, and stops there."""
    from stare_robot.sim.collect import collect_rollouts

    stats = store_stats(demo_store("PushCube-v1", num=2, seed=0))  # shared with tests/sim
    env_dim = stats[keys.OBS_ENV_STATE].shape[1]
    ckpt = tiny_policy("pi0_tokens", stats, num_bins=32, env_state_dim=env_dim).save_pretrained(
        tmp_path / "ckpt"
    )
    summary = collect_rollouts(
        ckpt,
        "PushCube-v1",
        1,
        tmp_path / "r.zarr",
        seed=20_000,
        max_steps=2,
        progress=False,
        min_per_outcome=1,
        max_num=3,
    )
    assert summary["seeds"] == [20_000, 20_001, 20_002]
    assert summary["successes"] == [False] * 3
    with pytest.raises(ValueError, match="max_num >= num"):
        collect_rollouts(ckpt, "PushCube-v1", 4, tmp_path / "x.zarr", max_num=3)


def test_rollouts_cli_reports_bad_input_before_any_simulation(recorded, tmp_path, capsys):
    from stare_robot.sim.collect import main as rollouts_main

    out = str(tmp_path / "r.zarr")
    assert rollouts_main(["--ckpt", str(recorded["ckpt"]), "--task", "PushCub", "--out", out]) == 2
    assert "PushCub" in capsys.readouterr().err
    missing = str(tmp_path / "nope")
    assert rollouts_main(["--ckpt", missing, "--task", "PushCube-v1", "--out", out]) == 2
    assert "nope" in capsys.readouterr().err
