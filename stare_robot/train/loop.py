"""The training loop every trainer shares: AdamW, warm-up + cosine schedule, gradient clipping,
optional mixed precision, TensorBoard, a progress bar, atomic checkpoints and exact resume.

It knows nothing about the method: a trainer hands it a policy (a torch module with
``training_losses(batch) -> {"loss": scalar, ...}`` and ``save_pretrained(dir)``) and a
``batch_fn(step, rank, world) -> batch`` that is a pure function of the step, so the data order,
and therefore the result, is the same whether a run is straight or resumed.

Multi-process data parallel goes through HF ``accelerate``: ``accelerate launch --multi_gpu
--num_processes 2 -m stare_robot.train.sft ...`` runs the same loop with the global batch split
across ranks (on a CPU-only machine ``--multi_gpu`` still gives two gloo processes; ``--cpu`` alone
needs MPI and silently starts one). Each rank seeds its own random streams (``seed + rank``), so
ranks draw different noise for their halves of the batch. Resume is exact for one process; with
several, rank 0 restores its saved random state and the others re-seed from (seed, rank, step).

Checkpoint layout under ``out``::

    checkpoints/step_000200/   policy files (save_pretrained) + trainer_state.json (step,
                               history, random states, scheduler, optimizer settings) +
                               trainer_state.safetensors (every tensor: model and optimizer
                               state, torch's random state)
    checkpoints/latest         text file naming the newest complete checkpoint
    final/                     the policy after the last step (save_pretrained only)

A checkpoint is written into a hidden temporary folder and renamed into place, and ``latest`` is
replaced atomically after that, so a run killed at any moment resumes from a complete checkpoint.

No pickle: a resume folder is read with JSON and safetensors only, so loading a folder someone sent
you cannot run code; a pickled ``trainer_state.pt`` (older versions) is refused, never unpickled.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

TRAINER_STATE = "trainer_state.json"  # everything but the tensors, which reference...
TRAINER_TENSORS = "trainer_state.safetensors"  # ...these by name
PICKLED_STATE = "trainer_state.pt"  # what versions before 0.2 wrote; refused
LATEST = "latest"


@dataclass
class LoopConfig:
    """Optimisation settings shared by all trainers."""

    steps: int = 2000
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (fp16 needs a GPU)
    seed: int = 0
    log_every: int = 20
    save_every: int = 500
    keep_checkpoints: int = 2
    progress: bool = True
    device: str = "cpu"  # "cpu", "cuda", "cuda:1": where accelerate places the model


def lr_factor(step: int, cfg: LoopConfig) -> float:
    """Multiplier on the base learning rate: linear warm-up, then cosine to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _LossModule(nn.Module):
    """Routes ``forward`` to ``training_losses`` so DDP sees a normal forward call."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.policy.training_losses(batch)


# ------------------------------------------------------------------------------ trainer state


class UnsafeCheckpointError(ValueError):
    """A resume folder holds state this version will not load (pickle, or a malformed file)."""


_NUMERIC_KINDS = "biuf"  # the numpy dtypes a state may hold (random states): no object arrays


def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """``obj`` as JSON, with each tensor moved into ``tensors`` under its path in ``obj``."""
    if isinstance(obj, torch.Tensor):
        # a copy of its own: safetensors refuses tensors sharing memory (tied weights)
        tensors[where] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": where}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"trainer state: {where} is a {obj.dtype} array; only numbers save")
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{where}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        # int keys (optimizer state) and the like: keep their type
        return {"__items__": [
            [_encode(k, tensors, f"{where}.key{i}"), _encode(v, tensors, f"{where}.{k}")]
            for i, (k, v) in enumerate(obj.items())
        ]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"trainer state: {where} is a {type(obj).__name__}, which is not saved "
                    "(tensors, numbers, strings, lists, tuples and dicts are)")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        dtype = np.dtype(obj["dtype"])
        if dtype.kind not in _NUMERIC_KINDS:
            raise UnsafeCheckpointError(f"trainer state holds a {dtype} array; only numbers load")
        return np.asarray(obj["__ndarray__"], dtype=dtype)
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def save_trainer_state(folder: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, and lists / tuples / dicts of them) as
    ``trainer_state.json`` + ``trainer_state.safetensors`` in ``folder``."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors, "state")
    save_file(tensors, str(Path(folder) / TRAINER_TENSORS))
    (Path(folder) / TRAINER_STATE).write_text(json.dumps(skeleton))


def load_trainer_state(folder: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read what :func:`save_trainer_state` wrote, with JSON and safetensors only: nothing in the
    folder is unpickled or executed. A pickled ``trainer_state.pt`` is refused."""
    folder = Path(folder)
    if not (folder / TRAINER_STATE).exists():
        if (folder / PICKLED_STATE).exists():
            raise UnsafeCheckpointError(
                f"{folder} holds a pickled {PICKLED_STATE} (an older stare-robot, or someone "
                "else's file); loading pickle can run arbitrary code, so it is refused. Start the "
                "run afresh without --resume, or resume from a checkpoint this version wrote.")
        raise FileNotFoundError(f"{folder} has no {TRAINER_STATE}")
    try:
        skeleton = json.loads((folder / TRAINER_STATE).read_text())
        tensors = load_file(str(folder / TRAINER_TENSORS), device=str(device))
        return _decode(skeleton, tensors)
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, KeyError, OSError) as err:
        raise UnsafeCheckpointError(f"{folder}: malformed trainer state ({err})") from err


# --------------------------------------------------------------------------------- checkpoints


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint under ``out``, or None. A pickled one is refused."""
    pointer = Path(out) / "checkpoints" / LATEST
    if not pointer.exists():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if (path / TRAINER_STATE).exists() and (path / TRAINER_TENSORS).exists():
        return path
    if (path / PICKLED_STATE).exists():
        load_trainer_state(path)  # raises UnsafeCheckpointError with the explanation
    return None


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(out: Path, step: int, policy: nn.Module, state: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoints/step_NNNNNN`` atomically and point ``latest`` at it."""
    root = Path(out) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp)
    save_trainer_state(tmp, state)
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    atomic_write_text(root / LATEST, name)
    for old in sorted(root.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_final(out: Path, policy: nn.Module) -> Path:
    """Write ``out/final`` atomically (replacing an older one)."""
    final = Path(out) / "final"
    tmp = Path(out) / f".tmp-final-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp)
    old = Path(out) / f".old-final-{os.getpid()}"
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------- the loop

BatchFn = Callable[[int, int, int], dict[str, Any]]


def train(
    policy: nn.Module,
    batch_fn: BatchFn,
    cfg: LoopConfig,
    out: Path | str,
    resume: bool = False,
    run_config: dict[str, Any] | None = None,
    trainable: list[nn.Parameter] | None = None,
) -> dict[str, Any]:
    """Optimise ``policy`` for ``cfg.steps`` steps. Returns a summary with the loss history.

    ``batch_fn(step, rank, world)`` must return this rank's share of the global batch for ``step``,
    determined by the step alone (no hidden iterator state), which is what makes resume exact.
    ``trainable`` restricts the optimiser to some parameters (default: all that require grad).
    """
    out = Path(out)
    device = torch.device(cfg.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device.index)  # accelerate uses the current CUDA device
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=cfg.mixed_precision)
    main = accelerator.is_main_process
    rank = accelerator.process_index
    seed_everything(cfg.seed + rank)

    params = trainable if trainable is not None else [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    module, optimizer = accelerator.prepare(_LossModule(policy), optimizer)

    start, history = 0, []
    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is not None:
        state = load_trainer_state(ckpt)
        accelerator.unwrap_model(module).policy.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, history = state["step"], state["history"]
        if main:
            torch.set_rng_state(state["torch_rng"])
            np.random.set_state(state["numpy_rng"])
            random.setstate(state["python_rng"])
        else:  # only rank 0's streams are saved; the others restart from a known point
            seed_everything(cfg.seed + rank + 1_000_003 * start)
        if main:
            print(f"[train] resumed from {ckpt} at step {start}")
    elif resume and main:
        print(f"[train] --resume: no checkpoint under {out}, starting fresh")

    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run_config.json").write_text(
            json.dumps({"loop": asdict(cfg), **(run_config or {})}, indent=2, default=str)
        )
        writer = SummaryWriter(str(out / "tb"))
    bar = tqdm(total=cfg.steps, initial=start, disable=not (cfg.progress and main), desc="train")
    module.train()
    t_last, samples = time.perf_counter(), 0
    for step in range(start, cfg.steps):
        batch = batch_fn(step, accelerator.process_index, accelerator.num_processes)
        with accelerator.autocast():
            losses = module(batch)
        accelerator.backward(losses["loss"])
        grad_norm = accelerator.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip > 0 else None
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        samples += _batch_size(batch) * accelerator.num_processes

        logged = {k: float(accelerator.reduce(v.detach(), reduction="mean")) for k, v in losses.items()}
        history.append({"step": step + 1, **logged})
        if main:
            bar.update(1)
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                now = time.perf_counter()
                rate = samples / max(now - t_last, 1e-9)
                t_last, samples = now, 0
                for k, v in logged.items():
                    writer.add_scalar(f"train/{k}", v, step + 1)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step + 1)
                writer.add_scalar("train/samples_per_s", rate, step + 1)
                if grad_norm is not None:
                    writer.add_scalar("train/grad_norm", float(grad_norm), step + 1)
                bar.set_postfix(loss=f"{logged['loss']:.4f}", sps=f"{rate:.0f}")
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            _save(accelerator, module, optimizer, scheduler, step + 1, history, out, cfg)
    bar.close()
    accelerator.wait_for_everyone()
    final = None
    if main:
        _save(accelerator, module, optimizer, scheduler, cfg.steps, history, out, cfg)
        final = save_final(out, accelerator.unwrap_model(module).policy)
        (out / "history.json").write_text(json.dumps(history))
        writer.close()
    accelerator.wait_for_everyone()
    return {"history": history, "final": final, "world_size": accelerator.num_processes}


def _save(accelerator, module, optimizer, scheduler, step, history, out, cfg) -> None:
    if not accelerator.is_main_process:
        return
    policy = accelerator.unwrap_model(module).policy
    state = {
        "step": step,
        "model": policy.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
    }
    save_checkpoint(out, step, policy, state, cfg.keep_checkpoints)


def _batch_size(batch: dict[str, Any]) -> int:
    for v in batch.values():
        if isinstance(v, torch.Tensor):
            return int(v.shape[0])
        if isinstance(v, list):
            return len(v)
    return 0
