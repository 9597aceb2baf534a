"""SFT trainer: batches, data/config checks, a real run on demos, exact resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from stare_robot import keys
from stare_robot.data.store import EpisodeStore
from stare_robot.policies import load_policy, make_config
from stare_robot.train import sft
from stare_robot.train.sft import (
    DataConfigMismatch,
    SFTArgs,
    batch_indices,
    check_data_fits_config,
    infer_obs_mode,
    run_sft,
)

STATE, ENV, J = 18, 6, 9




def _synthetic_store(path: Path, action_dim: int = 7, episodes: int = 2, steps: int = 10):
    """A hand-written state-mode store (no simulator) with a known action pattern."""
    store = EpisodeStore.create(path, attrs={keys.ATTR_TASK: "Synthetic"})
    rng = np.random.default_rng(0)
    for e in range(episodes):
        with store.new_episode(attrs={keys.ATTR_INSTRUCTION: "push", keys.ATTR_OBS_MODE: "state"}) as ep:
            for t in range(steps):
                ep.append({
                    keys.OBS_STATE: rng.normal(size=STATE).astype(np.float32),
                    keys.OBS_ENV_STATE: rng.normal(size=ENV).astype(np.float32),
                    keys.OBS_JOINT_POS: rng.normal(size=J).astype(np.float32),
                    keys.OBS_GRIPPER: np.array([1.0 if t < 5 else 0.0], np.float32),
                    keys.ACTION: np.full(action_dim, 0.1 * t - e, np.float32),
                })
            ep.set_attrs(success=True)
    return store


def _args(data, out, **kw) -> SFTArgs:
    base = {"steps": 6, "batch_size": 4, "warmup_steps": 2, "save_every": 3, "log_every": 3,
            "quiet": True, "threads": 1}
    return SFTArgs(data=Path(data), out=Path(out), **{**base, **kw})


# ------------------------------------------------------------------------------------ batches


def test_rank_shares_reassemble_the_global_batch():
    whole = batch_indices(step=7, seed=3, batch_size=12, num_items=1000)
    shares = [batch_indices(7, 3, 12, 1000, rank=r, world=3) for r in range(3)]
    assert all(len(s) == 4 for s in shares)
    assert np.array_equal(np.concatenate(shares), whole)
    # a pure function of (seed, step): same again, different for another step or seed
    assert np.array_equal(batch_indices(7, 3, 12, 1000), whole)
    assert not np.array_equal(batch_indices(8, 3, 12, 1000), whole)
    assert not np.array_equal(batch_indices(7, 4, 12, 1000), whole)
    with pytest.raises(ValueError, match="divisible"):
        batch_indices(0, 0, 10, 100, rank=0, world=3)


# ------------------------------------------------------------------------- data/config checks


def test_obs_mode_is_read_from_the_store(tmp_path):
    assert infer_obs_mode(_synthetic_store(tmp_path / "s.zarr")) == "state"


def test_action_dim_mismatch_names_the_field(tmp_path):
    store = _synthetic_store(tmp_path / "s.zarr", action_dim=8)
    config = make_config("pi0", obs_mode="state", state_dim=STATE, env_state_dim=ENV)  # 7-D actions
    with pytest.raises(DataConfigMismatch, match=r"'action'.*\(8,\).*action_dim -> \(7,\)"):
        check_data_fits_config(store, config)
    rgb = make_config("pi0", obs_mode="rgb", state_dim=STATE, action_dim=8)
    with pytest.raises(DataConfigMismatch, match="obs/base_camera/rgb"):
        check_data_fits_config(store, rgb)


def test_init_from_a_checkpoint_with_other_action_dim_is_a_clear_cli_error(tmp_path, capsys):
    data7 = _synthetic_store(tmp_path / "a7.zarr", action_dim=7).root
    data8 = _synthetic_store(tmp_path / "a8.zarr", action_dim=8).root
    run_sft(_args(data7, tmp_path / "run7", steps=1, stake=False))
    code = sft.main(["--data", str(data8), "--out", str(tmp_path / "run8"),
                     "--init", str(tmp_path / "run7" / "final"), "--steps", "1", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'action'" in err and "action_dim" in err and "(8,)" in err


def test_missing_store_is_a_clear_cli_error(tmp_path, capsys):
    code = sft.main(["--data", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "nope.zarr" in capsys.readouterr().err


# ------------------------------------------------------------------------- real runs on demos


@pytest.mark.sim
def test_sft_on_demos_writes_a_checkpoint_that_loads_and_predicts(demo_store, tmp_path):
    data = demo_store("PushCube-v1", num=2, seed=0, obs_mode="state")
    summary = run_sft(_args(data, tmp_path / "run", policy="pi0", steps=4))
    assert [h["step"] for h in summary["history"]] == [1, 2, 3, 4]
    assert all(np.isfinite(h[keys.LOSS]) and keys.LOSS_STAGE in h for h in summary["history"])
    policy = load_policy(tmp_path / "run" / "final")
    # normalisation statistics come from the data and travel with the checkpoint
    store = EpisodeStore.open(data)
    actions = np.concatenate([ep[keys.ACTION][:] for ep in store])
    np.testing.assert_allclose(policy.processor.stats[keys.ACTION].mean, actions.mean(0), atol=1e-6)
    assert policy.config.env_state_dim == store[store.episode_ids()[0]].shape(keys.OBS_ENV_STATE)[1]
    ep = store[store.episode_ids()[0]]
    obs = {k: ep[k][0] for k in policy.metadata.inputs}
    obs[keys.INSTRUCTION] = ep.attrs[keys.ATTR_INSTRUCTION]
    chunk = policy.predict(obs)
    assert chunk.shape == (policy.config.chunk_size, 7) and np.all(np.isfinite(chunk))
    assert np.array_equal(chunk, policy.predict(obs))  # deterministic


@pytest.mark.sim
def test_resume_after_interruption_gives_the_straight_run_weights(demo_store, tmp_path, monkeypatch):
    data = demo_store("PushCube-v1", num=2, seed=0, obs_mode="state")
    run_sft(_args(data, tmp_path / "straight", policy="pi0_tokens"))

    real = sft.make_batch_fn

    def crashing(*a, **kw):  # the run dies at step 5, after the step-3 checkpoint
        fn = real(*a, **kw)

        def batch_fn(step, rank, world):
            if step == 4:
                raise KeyboardInterrupt
            return fn(step, rank, world)

        return batch_fn

    monkeypatch.setattr(sft, "make_batch_fn", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_sft(_args(data, tmp_path / "resumed", policy="pi0_tokens"))
    monkeypatch.setattr(sft, "make_batch_fn", real)
    # the resumed run restores weights, optimiser, schedule and RNG from the step-3 checkpoint
    run_sft(_args(data, tmp_path / "resumed", policy="pi0_tokens", resume=True))
    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_unreached_parameters_are_frozen_so_ddp_gets_every_gradient(tmp_path):
    from stare_robot.data.dataset import EpisodeWindowDataset
    from stare_robot.policies import make_policy
    from stare_robot.policies.normalize import NormalizationStats

    store = _synthetic_store(tmp_path / "s.zarr")
    dataset = EpisodeWindowDataset(store, 4, sft.default_obs_keys("state"))
    config = sft.build_config("pi0", dataset, "state", store, 4, True)
    policy = make_policy(config, NormalizationStats.from_arrays(dataset.stats_arrays()))
    batch_fn = sft.make_batch_fn(dataset, policy, 0, 4, augment=False)
    frozen = sft.freeze_unreached_parameters(policy, batch_fn(0, 0, 1))
    # a state-mode policy never runs its vision tower; the action path is all trained
    assert any("vision_tower" in n for n in frozen)
    assert not any("state_token" in n or "stake" in n or "action" in n for n in frozen)
    policy.training_losses(batch_fn(1, 0, 1))[keys.LOSS].backward()
    missing = [n for n, p in policy.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
