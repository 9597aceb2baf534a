"""The shared training loop: schedule, exact resume, atomic checkpoints."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from stare_robot.train.loop import (
    PICKLED_STATE,
    TRAINER_STATE,
    TRAINER_TENSORS,
    LoopConfig,
    UnsafeCheckpointError,
    latest_checkpoint,
    load_trainer_state,
    lr_factor,
    save_trainer_state,
    train,
)


class LinearPolicy(nn.Module):
    """Test policy: linear regression with noise in the loss, so RNG state matters for resume."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def training_losses(self, batch):
        noisy = batch["x"] + 0.01 * torch.randn_like(batch["x"])  # consumes torch RNG
        loss = ((self.lin(noisy) - batch["y"]) ** 2).mean()
        return {"loss": loss, "mse": loss.detach()}

    def save_pretrained(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        save_file(self.state_dict(), str(Path(path) / "model.safetensors"))


W = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, 1.0, -1.0]])


def batch_fn(step, rank, world):
    g = torch.Generator().manual_seed(1000 + step)  # a pure function of the step
    x = torch.randn(8, 4, generator=g)
    return {"x": x, "y": x @ W.T}


def _cfg(steps, **kw):
    return LoopConfig(steps=steps, lr=0.05, warmup_steps=3, save_every=5, log_every=5,
                      progress=False, **kw)


def test_warmup_then_cosine_schedule_matches_hand_values():
    cfg = LoopConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    # half-way through the cosine: 0.1 + 0.9 * 0.5 * (1 + cos(pi/2)) = 0.55
    assert lr_factor(60, cfg) == pytest.approx(0.55)
    assert lr_factor(110, cfg) == pytest.approx(0.1)
    assert lr_factor(35, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))


def test_training_reduces_the_loss_and_writes_final(tmp_path):
    torch.manual_seed(0)
    result = train(LinearPolicy(), batch_fn, _cfg(60), tmp_path)
    losses = [h["loss"] for h in result["history"]]
    assert losses[-1] < 0.1 * losses[0]
    assert (tmp_path / "final" / "model.safetensors").exists()
    assert latest_checkpoint(tmp_path).name == "step_000060"


def test_resume_is_exact(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    torch.manual_seed(0)
    train(LinearPolicy(), batch_fn, _cfg(20), straight)
    # the same run, interrupted at step 12 (last checkpoint at 10), then resumed with a fresh model
    def crashing_batch_fn(step, rank, world):
        if step == 12:
            raise KeyboardInterrupt
        return batch_fn(step, rank, world)

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(LinearPolicy(), crashing_batch_fn, _cfg(20), resumed)
    assert latest_checkpoint(resumed).name == "step_000010"
    torch.manual_seed(123)  # a different init: resume must overwrite it
    result = train(LinearPolicy(), batch_fn, _cfg(20), resumed, resume=True)
    a = load_file(str(straight / "final" / "model.safetensors"))
    b = load_file(str(resumed / "final" / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["step"] for h in result["history"]] == list(range(1, 21))


def test_resume_ignores_a_half_written_checkpoint(tmp_path):
    torch.manual_seed(0)
    train(LinearPolicy(), batch_fn, _cfg(10), tmp_path)
    # a crash while writing the next checkpoint leaves a hidden temp folder and no pointer change
    (tmp_path / "checkpoints" / ".tmp-step_000015-999").mkdir()
    assert latest_checkpoint(tmp_path).name == "step_000010"
    # a pointer to a checkpoint without its trainer state is not trusted
    (tmp_path / "checkpoints" / "latest").write_text("step_000015")
    assert latest_checkpoint(tmp_path) is None


class _Payload:
    """Pickled, this object runs ``open(marker, "w")`` when unpickled: a stand-in for malware."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_trainer_state_round_trips_without_pickle(tmp_path):
    opt = torch.optim.AdamW(nn.Linear(3, 2).parameters(), lr=0.1, betas=(0.8, 0.9))
    opt.zero_grad()
    sum(p.sum() for g in opt.param_groups for p in g["params"]).backward()
    opt.step()
    state = {"step": 7, "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
             "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
             "history": [{"step": 1, "loss": float("nan")}]}
    save_trainer_state(tmp_path, state)
    back = load_trainer_state(tmp_path)
    assert back["step"] == 7 and back["history"][0]["step"] == 1
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.9)  # tuples stay tuples
    assert set(back["optimizer"]["state"]) == {0, 1}  # int keys stay ints
    saved = state["optimizer"]["state"][0]["exp_avg"]
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], saved)
    assert torch.equal(back["torch_rng"], state["torch_rng"])
    np.random.set_state(back["numpy_rng"])  # accepted as is
    random.setstate(back["python_rng"])
    assert np.random.get_state()[1].tolist() == state["numpy_rng"][1].tolist()
    assert not (tmp_path / PICKLED_STATE).exists()


def test_a_pickled_resume_folder_is_refused_and_never_executed(tmp_path):
    torch.manual_seed(0)
    train(LinearPolicy(), batch_fn, _cfg(10), tmp_path)
    ckpt = tmp_path / "checkpoints" / "step_000010"
    marker = tmp_path / "pwned"
    # an older-version (or hostile) folder: only a pickled trainer_state.pt
    (ckpt / TRAINER_STATE).unlink()
    (ckpt / TRAINER_TENSORS).unlink()
    torch.save({"model": _Payload(marker)}, ckpt / PICKLED_STATE)
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        train(LinearPolicy(), batch_fn, _cfg(20), tmp_path, resume=True)
    # the payload in the safetensors file's place: a parse error, not an execution
    torch.save({"model": _Payload(marker)}, ckpt / TRAINER_TENSORS)
    (ckpt / TRAINER_STATE).write_text('{"model": {"__tensor__": "state.model"}}')
    with pytest.raises(UnsafeCheckpointError, match="malformed"):
        load_trainer_state(ckpt)
    assert not marker.exists()
    # a sanity check that the payload is live: plain unpickling does run it
    torch.load(ckpt / PICKLED_STATE, weights_only=False)
    assert marker.exists()
