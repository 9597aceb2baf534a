"""rgb mode end to end: SFT on camera demos, then evaluation with a video (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from stare_robot import keys
from stare_robot.policies import load_policy
from stare_robot.train.sft import SFTArgs, run_sft


@pytest.mark.sim
@pytest.mark.slow
def test_rgb_sft_trains_and_evaluates_end_to_end(demo_store, tmp_path):
    from stare_robot.sim.evaluate import main as eval_main

    torch.set_num_threads(1)
    data = demo_store("PushCube-v1", num=2, seed=0, obs_mode="rgb")
    summary = run_sft(SFTArgs(data=Path(data), out=tmp_path / "run", steps=20, batch_size=8,
                              warmup_steps=5, save_every=10, quiet=True, threads=1))
    assert all(np.isfinite(h[keys.LOSS]) for h in summary["history"])
    # the images reach the loss: the vision tower is trained (in state mode it is frozen)
    run_config = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert not any("vision_tower" in n for n in run_config["frozen_unreached_parameters"])
    mid = load_file(str(tmp_path / "run" / "checkpoints" / "step_000010" / "model.safetensors"))
    end = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    vision = [k for k in end if "vision_tower" in k]
    assert vision and any(not torch.equal(mid[k], end[k]) for k in vision)
    policy = load_policy(tmp_path / "run" / "final")
    assert policy.config.obs_mode == "rgb" and keys.obs_rgb("base_camera") in policy.metadata.inputs
    assert keys.OBS_ENV_STATE not in policy.metadata.inputs  # no privileged state in rgb mode
    out = tmp_path / "eval"
    assert eval_main(["--ckpt", str(tmp_path / "run" / "final"), "--task", "PushCube-v1",
                      "--episodes", "2", "--max-steps", "8", "--video-episodes", "1",
                      "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "results.json").read_text())["policy"]
    assert result["obs_mode"] == "rgb" and result["episodes"] == 2
    gifs = list((out / "videos").glob("*.gif"))
    assert [g.name for g in gifs] == ["seed_10000.gif"]
    import imageio.v2 as imageio

    frames = imageio.mimread(gifs[0])
    length = result["per_episode"][0]["length"]
    # the reset frame plus one per executed action (the gif writer may merge identical frames)
    assert 1 < len(frames) <= length + 1
    assert frames[0].shape[:2] == (128, 128)
