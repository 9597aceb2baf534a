"""``stare-robot report sim2real`` without ``--out`` writes beside the simulation results."""

from __future__ import annotations

import json

import numpy as np

from stare_robot import keys
from stare_robot.cli import main as cli_main
from stare_robot.deploy import EpisodeRecorder
from stare_robot.eval.metrics import EpisodeOutcome, summarize


def test_sim2real_default_out_is_beside_the_sim_results(tmp_path, monkeypatch, capsys):
    store = tmp_path / "robot.zarr"
    rec = EpisodeRecorder(store)
    rec.start({keys.ATTR_TASK: "PushCube-v1", keys.ATTR_SOURCE: "real"})
    for t, g in enumerate([1.0, 1.0, 0.3, 0.3, 1.0]):
        rec.add_frame(float(t), {keys.OBS_JOINT_POS: np.zeros(9, np.float32),
                                 keys.OBS_GRIPPER: np.array([g], np.float32)})
        rec.add_action(np.zeros(7))
    rec.label(True)
    rec.stop()
    run_eval = tmp_path / "runs" / "PushCube-v1" / "eval" / "sft"
    run_eval.mkdir(parents=True)
    sim = summarize([EpisodeOutcome(seed=0, success=True, length=20, furthest_stage=2)],
                    ["approach", "skill", "retreat"])
    (run_eval / "results.json").write_text(json.dumps({"sft": sim}))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the old default was relative to the working directory

    assert cli_main(["report", "sim2real", "--sim", str(run_eval / "results.json"),
                     "--recorded", str(store)]) == 0
    assert (run_eval / "sim2real" / "results.json").is_file()
    assert f"report written to {run_eval / 'sim2real'}" in capsys.readouterr().out
    assert list(cwd.iterdir()) == []
