"""Recorded-episode evaluation and the sim2real report (no ROS, no sim)."""

from __future__ import annotations

import json

import numpy as np

from stare_robot import keys
from stare_robot.cli import main as cli_main
from stare_robot.deploy import EpisodeRecorder
from stare_robot.eval.metrics import EpisodeOutcome, summarize
from stare_robot.eval.recorded import evaluate_store


def record(rec: EpisodeRecorder, openings: list[float], success: bool | None) -> None:
    rec.start({keys.ATTR_TASK: "PushCube-v1", keys.ATTR_SOURCE: "real"})
    for t, g in enumerate(openings + [1.0]):
        q = np.zeros(9, np.float32)
        rec.add_frame(float(t), {keys.OBS_JOINT_POS: q, keys.OBS_GRIPPER: np.array([g], np.float32)})
        rec.add_action(np.zeros(7))
    if success is not None:
        rec.label(success)
    rec.stop()


def test_recorded_store_metrics_and_sim2real_report(tmp_path, capsys):
    store = tmp_path / "robot.zarr"
    rec = EpisodeRecorder(store)
    grasp_and_release = [1.0] * 3 + [0.5, 0.2, 0.2, 0.2, 0.6, 1.0, 1.0]  # reaches stage 2
    never_closes = [1.0] * 6  # stays in stage 0
    record(rec, grasp_and_release, True)
    record(rec, never_closes, False)
    record(rec, grasp_and_release, False)
    s = evaluate_store(store)
    assert s["episodes"] == 3 and abs(s["success_rate"] - 1 / 3) < 1e-9
    assert s["stage_names"] == ["approach", "skill", "retreat"]
    assert s["reached_fraction"] == [1.0, 2 / 3, 2 / 3]
    assert s["conditional_stage_success"][0]["rate"] == 2 / 3
    assert s["per_episode"][1]["length"] == len(never_closes) + 1  # + the final open frame

    sim = summarize([EpisodeOutcome(seed=i, success=i < 3, length=20, furthest_stage=2)
                     for i in range(4)], ["approach", "skill", "retreat"])
    (tmp_path / "sim.json").write_text(json.dumps({"sft": sim}))
    out = tmp_path / "report"
    assert cli_main(["report", "sim2real", "--sim", str(tmp_path / "sim.json"),
                     "--recorded", str(store), "--out", str(out)]) == 0
    both = json.loads((out / "results.json").read_text())
    assert both["sim: sft"]["success_rate"] == 0.75 and both["recorded"]["episodes"] == 3
    assert "| recorded | 3 | 33.3" in (out / "results.md").read_text()


def test_unlabelled_episode_and_bad_inputs_give_clear_errors(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    record(EpisodeRecorder(store), [1.0] * 3, None)
    (tmp_path / "sim.json").write_text(json.dumps({"x": {"oops": 1}}))
    assert cli_main(["report", "sim2real", "--sim", str(tmp_path / "sim.json"), "--recorded", str(store)]) == 2
    assert "not an evaluation results.json" in capsys.readouterr().err
    import pytest

    from stare_robot.eval.cli import Sim2RealArgs, sim2real
    from stare_robot.eval.recorded import RecordedEvalError

    (tmp_path / "ok.json").write_text(json.dumps({}))
    with pytest.raises(RecordedEvalError, match="no success label.*~/label"):
        sim2real(Sim2RealArgs(sim=tmp_path / "ok.json", recorded=store, out=tmp_path / "r"))
    assert cli_main(["report", "nope"]) == 2
