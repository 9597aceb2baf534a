"""Scripted WidowX expert -> `stare-robot demos` store -> stages -> evaluation (real ManiSkill3)."""

from __future__ import annotations

import numpy as np
import pytest

from stare_robot import keys
from stare_robot.data.store import EpisodeStore
from stare_robot.policies.base import ArraySpec, Policy, PolicyMetadata

pytestmark = pytest.mark.sim

TASK = "PutCarrotOnPlateInScene-v1"


@pytest.fixture(scope="module")
def carrot_demos(bridge_assets, tmp_path_factory):
    """Two scripted demos (seeds 0 and 1) through the demos generator, state mode."""
    from stare_robot.sim.demos import generate_demos

    out = tmp_path_factory.mktemp("bridge") / "carrot.zarr"
    summary = generate_demos(TASK, num=2, seed=0, out=out, progress=False,
                             sim_backend="physx_cpu", max_attempts=2)
    return summary, out


def test_scripted_expert_demos_succeed_grasp_and_record_the_widowx(carrot_demos):
    summary, out = carrot_demos
    assert summary["kept"] == 2 and summary["attempted"] == 2, summary["failed"]
    for ep in EpisodeStore.open(out):
        attrs = ep.attrs
        assert attrs[keys.ATTR_ROBOT] == "widowx250s" and attrs[keys.ATTR_SUCCESS]
        assert attrs[keys.ATTR_CONTROL_RATE] == 5.0
        assert attrs["require_release"] is True  # the put-on stage setting travels with the data
        action = ep[keys.ACTION][:]
        assert np.all(np.abs(action) <= 1.0 + 1e-6)
        closed = action[:, 6] < 0
        # open -> closed (grasp) -> open (release), each once
        assert closed.any() and not closed[0] and not closed[-1]
        assert np.count_nonzero(np.diff(closed.astype(int))) == 2
        assert ep[keys.SIM_IS_GRASPED][:].any()
        assert ep[keys.OBS_ENV_STATE].shape[1] == 14  # object pose then plate pose
        # the last recorded step's outcome is the env's success
        assert ep[keys.SIM_SUCCESS][-1]


def test_stage_engine_segments_expert_demos_into_every_stage_in_order(carrot_demos):
    from stare_robot import stages
    from stare_robot.stages.annotate import fields_needed, resolve_family

    _, out = carrot_demos
    for ep in EpisodeStore.open(out):
        family = resolve_family(None, ep.attrs)
        assert family.name == "pick_place" and family.config.require_release
        stage = stages.run_separator(family, ep.load(fields_needed(family))).stage
        assert stage[0] == 0 and stage[-1] == family.num_stages - 1
        assert np.all(np.diff(stage) >= 0)
        assert set(np.unique(stage)) == set(range(family.num_stages))  # reach, grasp, transport, place


class ReplayPolicy(Policy):
    """Test policy: replays the demo whose first observation (robot and object state) matches the
    episode's, else holds."""

    def __init__(self, store_path):
        store = EpisodeStore.open(store_path)
        self.demos = {
            self._key(ep[keys.OBS_STATE][0], ep[keys.OBS_ENV_STATE][0]): ep[keys.ACTION][:]
            for ep in store
        }
        self.current, self.t = None, 0
        self._meta = PolicyMetadata(
            name="replay", version="0", action_space=keys.ACTION_SPACE_EE_DELTA, action_dim=7,
            chunk_size=1, control_rate_hz=5.0,
            inputs={keys.OBS_STATE: ArraySpec((16,), "float32"),
                    keys.OBS_ENV_STATE: ArraySpec((14,), "float32")},
        )

    @staticmethod
    def _key(state, env_state) -> bytes:
        return np.round(np.concatenate([state, env_state]).astype(np.float64), 4).tobytes()

    @property
    def metadata(self) -> PolicyMetadata:
        return self._meta

    def predict(self, obs) -> np.ndarray:
        key = self._key(obs[keys.OBS_STATE], obs[keys.OBS_ENV_STATE])
        if key in self.demos:
            self.current, self.t = self.demos[key], 0
        if self.current is None or self.t >= len(self.current):
            return np.array([[0, 0, 0, 0, 0, 0, keys.GRIPPER_OPEN]], np.float32)
        self.t += 1
        return self.current[self.t - 1 : self.t]


def test_evaluation_counts_success_grasp_and_stages_on_the_env_episodes(carrot_demos):
    """Demos replayed from their seeds succeed within the default 60-step horizon; grasp success
    and conditional stage success come out of the same rollouts."""
    from stare_robot.sim.evaluate import evaluate

    _, out = carrot_demos
    seeds = sorted(ep.attrs[keys.ATTR_SEED] for ep in EpisodeStore.open(out))
    summary, _ = evaluate(ReplayPolicy(out), TASK, episodes=len(seeds), seed=seeds[0],
                          execute_steps=1, progress=False, sim_backend="physx_cpu")
    assert summary["max_steps"] == 60
    assert summary["success_rate"] == 1.0
    assert summary["grasp_rate"] == 1.0
    assert summary["episodes"] == 2


@pytest.mark.slow
def test_sft_on_expert_demos_trains_and_evaluates_end_to_end(carrot_demos, tmp_path):
    """`stare-robot train sft` on the scripted demos, then `stare-robot eval` on the env's own
    episodes: a small budget, so only the pipeline and its report are checked, not the success."""
    import json

    from stare_robot.sim.evaluate import main as eval_main

    from stare_robot.train.sft import main as sft_main

    _, data = carrot_demos
    run = tmp_path / "sft"
    assert sft_main(["--data", str(data), "--out", str(run), "--steps", "20", "--batch-size", "8",
                     "--warmup-steps", "2", "--save-every", "20", "--quiet", "--threads", "1"]) == 0
    out = tmp_path / "eval"
    assert eval_main(["--ckpt", str(run / "final"), "--task", TASK, "--episodes", "2",
                      "--seed", "10000", "--out", str(out), "--quiet",
                      "--sim-backend", "physx_cpu"]) == 0
    row = json.loads((out / "results.json").read_text())["policy"]  # {row name: summary}
    assert row["episodes"] == 2 and row["max_steps"] == 60
    assert row["grasp_rate"] is not None  # pick/place reports grasp success
    assert row["stage_names"] == ["reach", "grasp", "transport", "place"]
    # P(stage k | stage k-1) for every stage after the first
    assert [r["name"] for r in row["conditional_stage_success"]] == ["grasp", "transport", "place"]
    assert all(e["length"] <= 60 for e in row["per_episode"])
