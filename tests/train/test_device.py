"""``--device`` on every entry point that loads or builds a policy: eval, rollouts, train sft /
tpo / ppo, ipi. Each runs its real command up to the point where the policy is ready, where a spy
records the devices of its parameters and stops the run. "meta" stands in for an accelerator (no
CUDA here, and none is faked): a flag that is dropped anywhere leaves the parameters on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import stare_robot.sim.collect
import stare_robot.sim.evaluate
import stare_robot.sim.ipi
import stare_robot.sim.ppo
import torch
from preference_fakes import ENV_STATE_DIM, make_store

import stare_robot.policies
import stare_robot.train.sft
import stare_robot.train.tpo
from stare_robot import keys
from stare_robot.cli import main as cli
from stare_robot.data.store import EpisodeStore
from stare_robot.policies import make_config, make_policy
from stare_robot.policies.normalize import NormalizationStats
from stare_robot.train.preferences import make_pairs_file

TASK = "PushCube-v1"
EPISODES = [
    {"task": "A", "success": True, "closes_at": 4, "opens_at": 10},
    {"task": "A", "success": False, "closes_at": 4, "opens_at": None},
    {"task": "A", "success": True, "closes_at": 5, "opens_at": 11},
    {"task": "A", "success": False, "closes_at": None, "opens_at": None},
]


class PolicyReady(Exception):
    """Raised by the spy once it has seen the policy: the run goes no further."""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("device")
    store = make_store(root / "eps.zarr", EPISODES)
    make_pairs_file([store], root / "pairs.json")
    ep = EpisodeStore.open(store)
    arrays = {k: np.concatenate([ep[e][k][:] for e in ep.episode_ids()])
              for k in (keys.OBS_STATE, keys.OBS_ENV_STATE, keys.ACTION)}
    torch.manual_seed(0)
    config = make_config("pi0_tokens", obs_mode="state", env_state_dim=ENV_STATE_DIM,
                         use_stake=False, num_bins=32)
    policy = make_policy(config, NormalizationStats.from_arrays(arrays))
    ckpt = policy.save_pretrained(root / "ckpt")
    return {"root": root, "store": store, "pairs": root / "pairs.json", "ckpt": Path(ckpt)}


@pytest.fixture
def seen(monkeypatch):
    """Devices of the policy's parameters, recorded where each entry point gets its policy."""
    devices: list[set[str]] = []
    real_load = stare_robot.policies.load_policy

    def record(policy):
        devices.append({p.device.type for p in policy.parameters()})
        raise PolicyReady

    def load_policy(path, device=None):
        return record(real_load(path, device=device))

    for module in (stare_robot.policies, stare_robot.sim.evaluate, stare_robot.sim.ppo,
                   stare_robot.sim.ipi, stare_robot.sim.collect, stare_robot.train.tpo):
        monkeypatch.setattr(module, "load_policy", load_policy)
    # SFT builds a fresh policy: look at it just before the training loop starts
    monkeypatch.setattr(stare_robot.train.sft, "freeze_unreached_parameters",
                        lambda policy, batch: record(policy))
    return devices


def commands(files, tmp: Path) -> dict[str, list[str]]:
    ckpt, out = str(files["ckpt"]), str(tmp / "out")
    return {
        "eval": ["eval", "--ckpt", ckpt, "--task", TASK, "--episodes", "1", "--out", out],
        "rollouts": ["rollouts", "--ckpt", ckpt, "--task", TASK, "--num", "1", "--out",
                     str(tmp / "r.zarr")],
        "train sft": ["train", "sft", "--data", str(files["store"]), "--out", out, "--steps", "1",
                      "--batch-size", "2", "--no-stake", "--quiet"],
        "train tpo": ["train", "tpo", "--ckpt", ckpt, "--pairs", str(files["pairs"]), "--out", out,
                      "--steps", "1", "--quiet"],
        "train ppo": ["train", "ppo", "--ckpt", ckpt, "--task", TASK, "--out", out, "--quiet"],
    }


@pytest.mark.parametrize("command", ["eval", "rollouts", "train sft", "train tpo", "train ppo"])
@pytest.mark.parametrize("device", [None, "cpu", "meta"])
def test_the_policy_lands_on_the_requested_device(command, device, files, seen, tmp_path):
    argv = commands(files, tmp_path)[command] + ([] if device is None else ["--device", device])
    with pytest.raises(PolicyReady):
        cli(argv)
    assert seen == [{device or "cpu"}]  # the default is the CPU


@pytest.mark.parametrize("device", [None, "meta"])
def test_ipi_passes_its_device_to_the_step_it_runs(device, files, seen, tmp_path):
    # a run folder whose steps up to STA-TPO are finished (TPO skipped): the next is STA-PPO
    root = tmp_path / "run"
    (root / "sft").mkdir(parents=True)
    (root / "sft" / "final").symlink_to(files["ckpt"], target_is_directory=True)
    done = {s: {} for s in ("demos", "stages", "sft", "rollouts")}
    done |= {"pairs": {"pairs": 0}, "sta_tpo": {"skipped": "no preference pairs"}}
    (root / stare_robot.sim.ipi.DONE_FILE).write_text(json.dumps({"steps": done}))
    argv = ["ipi", "--task", TASK, "--budget", "tiny", "--out", str(root), "--quiet"]
    with pytest.raises(PolicyReady):
        cli(argv + ([] if device is None else ["--device", device]))
    assert seen == [{device or "cpu"}]
