"""Simulation evaluation: numbers equal a hand count, determinism, stage tracking, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from stare_robot import keys
from stare_robot.data.store import EpisodeStore
from stare_robot.policies.base import ArraySpec, Policy, PolicyMetadata

TASK = "PushCube-v1"




class DemoReplayPolicy(Policy):
    """Test policy: replays a recorded demo open loop when the episode starts from that demo's
    initial state (recognised by its env state); otherwise it holds still (gripper closed)."""

    def __init__(self, store_path, env_state_dim: int):
        store = EpisodeStore.open(store_path)
        self.demos = {self._key(ep[keys.OBS_ENV_STATE][0]): ep[keys.ACTION][:] for ep in store}
        self.current, self.t = None, 0
        self._meta = PolicyMetadata(
            name="demo-replay", version="0", action_space=keys.ACTION_SPACE_EE_DELTA,
            action_dim=7, chunk_size=1, control_rate_hz=20.0,
            inputs={keys.OBS_ENV_STATE: ArraySpec((env_state_dim,), "float32")},
        )

    @staticmethod
    def _key(env_state) -> bytes:
        return np.round(np.asarray(env_state, np.float64), 4).tobytes()

    @property
    def metadata(self) -> PolicyMetadata:
        return self._meta

    def predict(self, obs) -> np.ndarray:
        key = self._key(obs[keys.OBS_ENV_STATE])
        if key in self.demos:  # an episode's first observation
            self.current, self.t = self.demos[key], 0
        if self.current is None or self.t >= len(self.current):
            return np.array([[0, 0, 0, 0, 0, 0, keys.GRIPPER_CLOSED]], np.float32)
        action = self.current[self.t : self.t + 1]
        self.t += 1
        return action


@pytest.fixture(scope="module")
def replay_eval(demo_store):
    """Demo seeds (0, 1) replayed (expected successes) plus the next seed, which has no demo and is
    held still (a failure)."""
    from stare_robot.sim.evaluate import evaluate

    data = demo_store(TASK, num=2, seed=0, obs_mode="state")
    seeds = [ep.attrs[keys.ATTR_SEED] for ep in EpisodeStore.open(data)]
    env_dim = EpisodeStore.open(data)[0].shape(keys.OBS_ENV_STATE)[1]
    policy = DemoReplayPolicy(data, env_dim)
    first, span = min(seeds), max(seeds) - min(seeds) + 2
    runs = [evaluate(policy, TASK, span, seed=first, max_steps=40, execute_steps=1,
                     progress=False)[0] for _ in range(2)]
    return runs, set(seeds)


@pytest.mark.sim
def test_evaluator_numbers_equal_a_hand_count(replay_eval):
    runs, demo_seeds = replay_eval
    summary = runs[0]
    eps = summary["per_episode"]
    assert [e["seed"] for e in eps] == list(range(eps[0]["seed"], eps[0]["seed"] + len(eps)))
    wins = [e["success"] for e in eps]
    # replayed demos succeed and reach the final stage; episodes with no demo hold still and fail
    assert all(e["success"] == (e["seed"] in demo_seeds) for e in eps), eps
    assert all(e["length"] == 40 for e in eps if not e["success"])
    assert 0 < summary["success_rate"] < 1
    assert all(e["furthest_stage"] == 0 for e in eps if e["seed"] not in demo_seeds)
    assert summary["success_rate"] == sum(wins) / len(eps)
    assert summary["mean_length"] == pytest.approx(np.mean([e["length"] for e in eps]))
    assert summary["grasp_rate"] is None  # pushing has no grasp
    names = summary["stage_names"]
    assert names == ["reach", "contact", "push_pull", "goal"]
    for row in summary["conditional_stage_success"]:
        k = row["stage"]
        prev = sum(e["furthest_stage"] >= k - 1 for e in eps)
        now = sum(e["furthest_stage"] >= k for e in eps)
        assert (row["reached_prev"], row["reached"]) == (prev, now)
        assert row["rate"] == (now / prev if prev else None)
    lo, hi = summary["success_ci95"]
    assert lo < summary["success_rate"] < hi


@pytest.mark.sim
def test_evaluation_is_deterministic(replay_eval):
    first, second = replay_eval[0]
    assert first["per_episode"] == second["per_episode"]


@pytest.mark.sim
def test_eval_of_a_saved_checkpoint_is_deterministic_and_reports(demo_store, tmp_path):
    from pathlib import Path

    from stare_robot.sim.evaluate import main

    from stare_robot.train.sft import SFTArgs, run_sft

    data = demo_store(TASK, num=2, seed=0, obs_mode="state")
    run_sft(SFTArgs(data=Path(data), out=tmp_path / "run", steps=2, batch_size=4, quiet=True))
    ckpt = tmp_path / "run" / "final"
    outs = []
    for i in range(2):
        out = tmp_path / f"eval{i}"
        assert main(["--ckpt", str(ckpt), "--task", TASK, "--episodes", "2", "--max-steps", "6",
                     "--out", str(out), "--quiet"]) == 0
        import json

        outs.append(json.loads((out / "results.json").read_text())["policy"])
        assert (out / "results.md").exists() and (out / "results.png").stat().st_size > 0
    assert outs[0]["per_episode"] == outs[1]["per_episode"]
    assert outs[0]["seed_start"] == 10_000 and outs[0]["episodes"] == 2


def test_checkpoint_missing_a_file_is_a_clear_error(tmp_path, capsys):
    from stare_robot.sim.evaluate import main

    from stare_robot.policies import make_config, make_policy
    from stare_robot.policies.normalize import NormalizationStats

    config = make_config("pi0", obs_mode="state", env_state_dim=3)
    rng = np.random.default_rng(0)
    stats = NormalizationStats.from_arrays({
        keys.OBS_STATE: rng.normal(size=(20, 18)), keys.OBS_ENV_STATE: rng.normal(size=(20, 3)),
        keys.ACTION: rng.normal(size=(20, 7)),
    })
    make_policy(config, stats).save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    assert main(["--ckpt", str(tmp_path / "ckpt"), "--task", TASK, "--episodes", "1"]) == 2
    assert "model.safetensors" in capsys.readouterr().err


def test_observation_missing_a_camera_is_named():
    from stare_robot.sim.evaluate import EvalInputError, check_policy_fits_env

    class CameraPolicy:
        metadata = PolicyMetadata(
            name="cam", version="0", action_space=keys.ACTION_SPACE_EE_DELTA, action_dim=7,
            chunk_size=4, control_rate_hz=20.0,
            inputs={keys.obs_rgb("hand_camera"): ArraySpec((64, 64, 3), "uint8"),
                    keys.OBS_STATE: ArraySpec((18,), "float32")},
        )

    obs = {keys.OBS_STATE: np.zeros(18, np.float32),
           keys.obs_rgb("base_camera"): np.zeros((64, 64, 3), np.uint8)}
    with pytest.raises(EvalInputError, match="obs/hand_camera/rgb.*missing"):
        check_policy_fits_env(CameraPolicy(), obs, TASK)
    obs[keys.obs_rgb("hand_camera")] = np.zeros((128, 128, 3), np.uint8)
    with pytest.raises(EvalInputError, match=r"\(128, 128, 3\).*\(64, 64, 3\)"):
        check_policy_fits_env(CameraPolicy(), obs, TASK)


def test_unknown_task_is_a_clear_error(capsys):
    from stare_robot.sim.evaluate import main

    assert main(["--ckpt", "whatever", "--task", "PushCub-v1"]) == 2
    assert "PushCub-v1" in capsys.readouterr().err
