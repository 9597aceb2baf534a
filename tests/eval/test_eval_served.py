"""`stare-robot eval` through the server and on recorded episodes: the same loop, the same report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stare_robot.sim.evaluate import main

TASK = "PushCube-v1"


@pytest.mark.sim
@pytest.mark.slow
def test_served_evaluation_equals_in_process_per_episode(demo_store, tmp_path):
    from stare_robot.server import ServerSettings, create_app
    from stare_robot.server.runner import BackgroundServer

    from stare_robot.policies import load_policy
    from stare_robot.train.sft import SFTArgs, run_sft

    data = demo_store(TASK, num=3, seed=0, obs_mode="state")
    run_sft(SFTArgs(data=Path(data), out=tmp_path / "run", steps=100, batch_size=16, quiet=True))
    ckpt = tmp_path / "run" / "final"
    common = ["--task", TASK, "--episodes", "20", "--max-steps", "30", "--quiet"]
    assert main(["--ckpt", str(ckpt), "--out", str(tmp_path / "local"), *common]) == 0
    app = create_app(ServerSettings(ckpt=ckpt), policy=load_policy(ckpt))
    server = BackgroundServer(app).start()
    try:
        assert main(["--server", server.url, "--out", str(tmp_path / "served"), *common]) == 0
    finally:
        server.stop()
    local, served = (json.loads((tmp_path / d / "results.json").read_text())["policy"]
                     for d in ("local", "served"))
    assert len(local["per_episode"]) == 20
    # every episode identical: success, length and furthest stage, seed by seed
    assert served["per_episode"] == local["per_episode"]


@pytest.mark.sim
def test_recorded_episodes_are_scored_with_the_same_metrics(demo_store, tmp_path, capsys):
    store = demo_store(TASK, num=3, seed=0, obs_mode="state")
    assert main(["--episodes", str(store), "--out", str(tmp_path / "rec"), "--name", "demos"]) == 0
    summary = json.loads((tmp_path / "rec" / "results.json").read_text())["demos"]
    # motion-planner demos: all kept episodes succeeded and reached the last stage
    assert summary["episodes"] == 3 and summary["success_rate"] == 1.0
    assert summary["reached_fraction"][-1] == 1.0
    assert main(["--episodes", str(tmp_path / "missing.zarr")]) == 2
    assert "no episode store" in capsys.readouterr().err
