"""`stare-robot ipi`: budget presets, bad input, and (slow) a run killed in the middle of a step
that resumes from its checkpoint and completes with a report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stare_robot.sim.ipi import BUDGETS, IPIArgs, Run, main


def test_budget_presets_apply_explicit_overrides_only():
    sizes = IPIArgs(budget="default", sft_steps=123).resolved()
    assert sizes["sft_steps"] == 123
    assert {k: v for k, v in sizes.items() if k != "sft_steps"} == {
        k: v for k, v in BUDGETS["default"].items() if k != "sft_steps"
    }
    with pytest.raises(ValueError, match="--ppo-iterations must be >= 1"):
        IPIArgs(ppo_iterations=0).resolved()


def test_unknown_task_is_a_clear_error(tmp_path, capsys):
    assert main(["--task", "StackCub-v1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "StackCube-v1" in err  # the did-you-mean
    assert not (tmp_path / "run").exists()  # nothing half-made


def test_a_folder_made_with_other_settings_is_refused_not_mixed(tmp_path, capsys):
    out = tmp_path / "run"
    first = IPIArgs(task="PushCube-v1", budget="tiny", out=out)
    run = Run(first, out, first.resolved())
    out.mkdir()
    run.load()
    run.mark("demos", episodes=3)  # as a first invocation leaves the folder after its demos

    assert main(["--task", "PullCube-v1", "--budget", "tiny", "--sft-steps", "99",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "task 'PushCube-v1' (asked: 'PullCube-v1')" in err
    assert "sft-steps 30 (asked: 99)" in err
    assert "another --out" in err
    state = json.loads((out / "ipi_state.json").read_text())
    assert list(state["steps"]) == ["demos"] and state["identity"]["task"] == "PushCube-v1"

    # the same settings resume the folder (the identity check passes and keeps the steps)
    again = Run(first, out, first.resolved())
    again.load()
    assert again.finished("demos")


def test_a_folder_from_before_the_identity_was_recorded_adopts_this_runs(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "ipi_state.json").write_text(json.dumps({"steps": {"demos": {"episodes": 3}}}))
    args = IPIArgs(task="PushCube-v1", budget="tiny", out=out)
    run = Run(args, out, args.resolved())
    run.load()
    assert run.finished("demos") and run.state["identity"]["demos"] == BUDGETS["tiny"]["demos"]


def _ipi(out: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stare_robot.sim.ipi", "--task", "PushCube-v1", "--budget",
           "tiny", "--sft-steps", "60", "--out", str(out), "--quiet"]
    return subprocess.Popen(cmd, stdout=log.open("a"), stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.mark.sim
@pytest.mark.slow
def test_killed_mid_step_resumes_from_its_checkpoint_and_completes(tmp_path):
    out, log = tmp_path / "run", tmp_path / "ipi.log"
    proc = _ipi(out, log)
    latest = out / "sft" / "checkpoints" / "latest"
    deadline = time.monotonic() + 300
    try:
        while not latest.exists():  # SFT saves every 15 steps of 60: kill after the first save
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no SFT checkpoint within 5 minutes"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    state = json.loads((out / "ipi_state.json").read_text())
    assert set(state["steps"]) == {"demos", "stages"}  # killed inside sft
    assert not (out / "sft" / "final").exists()

    again = _ipi(out, log)
    assert again.wait(timeout=900) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "demos: finished earlier, skipped" in text
    assert "[train] resumed from" in text and "sft/checkpoints/step_" in text
    state = json.loads((out / "ipi_state.json").read_text())
    assert set(state["steps"]) == {"demos", "stages", "sft", "rollouts", "pairs", "sta_tpo",
                                   "sta_ppo", "ppo"}
    # held-out rollouts (seeds 30 000..) are collected for STA-TPO's checkpoint selection
    assert "heldout_episodes" in state["steps"]["rollouts"]
    assert "heldout_pairs" in state["steps"]["pairs"]
    assert (out / "rollouts_heldout.zarr").is_dir()
    results = json.loads((out / "results.json").read_text())
    assert "SFT" in results["results"] and "IPI (→STA-PPO)" in results["results"]
    assert {"STA-PPO", "PPO"} <= set(results["curves"])
    assert (out / "report.png").stat().st_size > 0
    assert "IPI on PushCube-v1" in (out / "report.md").read_text()


@pytest.mark.sim
@pytest.mark.slow
def test_ipi_runs_on_a_simplerenv_widowx_task(tmp_path, bridge_assets):
    """Issue 10: the whole pipeline accepts a Bridge task (scripted-expert demos, pick/place
    stages, WidowX PPO workers) from the shared asset pack."""
    out, task = tmp_path / "run", "PutCarrotOnPlateInScene-v1"
    cmd = [sys.executable, "-m", "stare_robot.sim.ipi", "--task", task, "--budget", "tiny",
           "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == task
    sft = results["results"]["SFT"]
    assert sft["episodes"] == BUDGETS["tiny"]["eval_episodes"]
    assert sft["stage_names"] == ["reach", "grasp", "transport", "place"]
    assert {"STA-PPO", "PPO"} <= set(results["curves"])
    from stare_robot import keys
    from stare_robot.data.store import EpisodeStore

    demos = list(EpisodeStore.open(out / "demos.zarr"))
    assert len(demos) == BUDGETS["tiny"]["demos"]
    assert all(ep.attrs[keys.ATTR_SUCCESS] for ep in demos)
    assert all(ep.attrs[keys.ATTR_ROBOT] == "widowx250s" for ep in demos)
