"""Supervised fine-tuning (behaviour cloning) of a policy on an episode store.

    stare-robot train sft --data data/pushcube.zarr --out runs/sft_pushcube
    stare-robot train sft --data data/pushcube.zarr --out runs/sft_pushcube --resume
    accelerate launch --multi_gpu --num_processes 2 -m stare_robot.train.sft \\
        --data data/pushcube.zarr --out runs/sft_2proc

Several processes on a CPU-only machine: ``accelerate launch --cpu --num_processes 2`` runs its
CPU processes through MPI (``mpirun``) and starts a single process when MPI is absent (as here);
``--multi_gpu`` makes accelerate use torchrun instead, and with no GPU the loop's
``Accelerator(cpu=True)`` joins the processes over gloo (``MULTI_CPU``). Both need the global
``--batch-size`` divisible by the number of processes.

The store's episodes become (observation, action chunk, StaKe labels) windows
(:class:`~stare_robot.data.dataset.EpisodeWindowDataset`); normalisation statistics are computed
from the data and saved inside every checkpoint. The optimisation itself (AdamW, warm-up + cosine,
clipping, mixed precision, TensorBoard, atomic checkpoints, exact resume, several processes via
``accelerate``) is :mod:`stare_robot.train.loop`.

Batches are a pure function of the step: step ``s`` draws ``batch_size`` window indices with
``numpy.random.default_rng([seed, s])``; with ``W`` processes rank ``r`` takes the ``r``-th of
``W`` equal contiguous slices, so the global batch is the same whatever ``W`` is.

Defaults (``pi0`` flow head, tiny backbone, chunk 4, batch 32, lr 3e-4, 2000 steps, 1 torch
thread) are what ``benchmarks/sft_learning.py`` measured to learn PushCube-v1 from 100 state-mode demos.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import tyro

from stare_robot import keys
from stare_robot.data.dataset import EpisodeWindowDataset
from stare_robot.data.errors import StoreError
from stare_robot.data.store import EpisodeStore
from stare_robot.policies import get_config_class, load_policy, make_config, make_policy
from stare_robot.policies.normalize import NormalizationStats
from stare_robot.train.loop import LoopConfig, seed_everything, train

# Defaults chosen with benchmarks/sft_learning.py (see its JSON for the measured run).
DEFAULT_POLICY = "pi0"
DEFAULT_STEPS = 2000
DEFAULT_BATCH_SIZE = 32
DEFAULT_LR = 3e-4
DEFAULT_CHUNK_SIZE = 4
DEFAULT_THREADS = 1  # measured: 2 threads ran 7x slower than 1 on the shared, loaded 2 cores


class DataConfigMismatch(ValueError):
    """The training data does not fit the policy config (widths, cameras, obs mode)."""


# ------------------------------------------------------------------------------ data <-> config


def infer_obs_mode(store) -> str:
    """``"state"`` or ``"rgb"``: the episodes' recorded obs mode, else what arrays they hold."""
    first = store[store.episode_ids()[0]]
    mode = first.attrs.get(keys.ATTR_OBS_MODE)
    if mode in ("state", "rgb"):
        return mode
    if keys.OBS_ENV_STATE in first:
        return "state"
    if any(keys.is_rgb(k) for k in first):
        return "rgb"
    raise DataConfigMismatch(
        f"cannot tell the obs mode of {store.root}: its episodes have neither {keys.OBS_ENV_STATE!r} "
        f"nor a camera image; they have {sorted(first.keys())}"
    )


def obs_keys_for(config) -> list[str]:
    """The observation arrays a policy config reads (what the dataset must load)."""
    if config.obs_mode == "rgb":
        return [*(keys.obs_rgb(cam) for cam in config.cameras), keys.OBS_STATE]
    return [keys.OBS_STATE, *([keys.OBS_ENV_STATE] if config.env_state_dim else [])]


def default_obs_keys(obs_mode: str) -> list[str]:
    """What a fresh policy of ``obs_mode`` reads: state + env state, or the camera + state."""
    if obs_mode == "rgb":
        return [keys.obs_rgb(keys.DEFAULT_CAMERA), keys.OBS_STATE]
    return [keys.OBS_STATE, keys.OBS_ENV_STATE]


def check_data_fits_config(store, config) -> None:
    """Raise :class:`DataConfigMismatch` naming the first array whose presence or width differs
    between the data and ``config`` (e.g. a 7-D config on 8-D actions)."""
    first = store[store.episode_ids()[0]]
    widths: dict[str, tuple[str, tuple[int, ...]]] = {
        keys.ACTION: ("action_dim", (config.action_dim,)),
        keys.OBS_STATE: ("state_dim", (config.state_dim,)),
    }
    if config.obs_mode == "state" and config.env_state_dim:
        widths[keys.OBS_ENV_STATE] = ("env_state_dim", (config.env_state_dim,))
    if config.obs_mode == "rgb":
        for cam in config.cameras:
            widths[keys.obs_rgb(cam)] = ("image_size", (config.image_size, config.image_size, 3))
    for key, (field_name, shape) in widths.items():
        if key not in first:
            raise DataConfigMismatch(
                f"the policy config needs {key!r} but the episodes of {store.root} lack it; "
                f"they have {sorted(first.keys())}"
            )
        have = tuple(first.shape(key)[1:])
        if have != shape:
            raise DataConfigMismatch(
                f"{key!r} in {store.root} has per-step shape {have}, but the policy config says "
                f"{field_name} -> {shape}; train a new policy on this data or use matching data"
            )


def build_config(policy: str, dataset, obs_mode: str, store, chunk_size: int, stake: bool,
                 overrides: dict[str, Any] | None = None):
    """The policy config sized from the data (state/env-state/action widths, image size)."""
    first = store[store.episode_ids()[0]]
    fields: dict[str, Any] = {
        "obs_mode": obs_mode,
        "state_dim": int(first.shape(keys.OBS_STATE)[1]),
        "action_dim": dataset.action_dim,
        "chunk_size": chunk_size,
        "use_stake": stake,
        "keyframe_dim": dataset.keyframe_dim,
        "control_rate_hz": float(first.attrs.get(keys.ATTR_CONTROL_RATE, 20.0)),
    }
    if obs_mode == "state":
        fields["env_state_dim"] = int(first.shape(keys.OBS_ENV_STATE)[1])
    else:
        fields["image_size"] = int(first.shape(keys.obs_rgb(keys.DEFAULT_CAMERA))[1])
    return make_config(policy, **{**fields, **(overrides or {})})


# ---------------------------------------------------------------------------------- batches


def batch_indices(step: int, seed: int, batch_size: int, num_items: int, rank: int = 0,
                  world: int = 1) -> np.ndarray:
    """This rank's window indices for ``step``: a contiguous 1/world slice of the global batch."""
    if batch_size % world:
        raise ValueError(f"batch_size={batch_size} must be divisible by the {world} processes")
    rng = np.random.default_rng([seed, step])
    global_batch = rng.integers(0, num_items, size=batch_size)
    share = batch_size // world
    return global_batch[rank * share : (rank + 1) * share]


def make_batch_fn(dataset, policy, seed: int, batch_size: int, augment: bool):
    """``batch_fn(step, rank, world)`` for the loop: windows, normalised action chunks."""

    def batch_fn(step: int, rank: int, world: int) -> dict[str, Any]:
        idx = batch_indices(step, seed, batch_size, len(dataset), rank, world)
        # augmentation randomness is per rank and step, so it too survives a resume
        aug_rng = np.random.default_rng([seed, step, rank, 1]) if augment else None
        batch = dataset.collate(idx, augment_rng=aug_rng)
        batch[keys.ACTION] = policy.processor.normalize_action(batch[keys.ACTION])
        return batch

    return batch_fn


def freeze_unreached_parameters(policy, batch: dict[str, Any]) -> list[str]:
    """Set ``requires_grad=False`` on parameters the training loss never reaches (e.g. the vision
    tower of a state-mode policy, the VLM's unused LM head); returns their names.

    DDP (several processes) otherwise waits forever for their gradients and fails. AdamW skips
    parameters without a gradient anyway, so single-process training is unchanged. The probe
    pass runs under a forked RNG so it does not shift the run's random stream.
    """
    with torch.random.fork_rng():
        policy.training_losses(batch)[keys.LOSS].backward()
    frozen = []
    for name, param in policy.named_parameters():
        if param.requires_grad and param.grad is None:
            param.requires_grad_(False)
            frozen.append(name)
        param.grad = None
    return frozen


# ------------------------------------------------------------------------------------ trainer


@dataclass
class SFTArgs:
    """Supervised fine-tuning of a VLA policy on an episode store."""

    data: Path
    """Episode store (Zarr) with demonstrations, e.g. from `stare-robot demos`."""
    out: Path
    """Run folder: checkpoints/, final/, tb/ (TensorBoard), history.json."""
    policy: str = DEFAULT_POLICY
    """A registered policy type (stare_robot.policies.POLICY_TYPES): pi0 (flow-matching action
    expert), pi0_tokens (discrete action-bin tokens, exact log-prob)."""
    stake: bool = True
    """StaKe auxiliary stage/keyframe heads during training (--no-stake turns them off)."""
    steps: int = DEFAULT_STEPS
    batch_size: int = DEFAULT_BATCH_SIZE
    """Global batch size (split evenly across processes)."""
    lr: float = DEFAULT_LR
    chunk_size: int = DEFAULT_CHUNK_SIZE
    """Actions predicted per observation."""
    obs: Literal["auto", "state", "rgb"] = "auto"
    """Observation mode; auto reads it from the store."""
    seed: int = 0
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    save_every: int = 500
    log_every: int = 20
    resume: bool = False
    """Continue exactly from out/checkpoints/latest."""
    init: Path | None = None
    """Start from this saved policy checkpoint instead of a fresh network (its config is kept)."""
    augment: bool = True
    """Random-shift image augmentation (rgb mode only)."""
    threads: int = DEFAULT_THREADS
    """torch intra-op threads per process."""
    device: str = "cpu"
    """Where the policy trains (e.g. cuda:0; several processes: accelerate's per-rank GPU)."""
    quiet: bool = False


def run_sft(args: SFTArgs, config_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and return the loop's summary plus ``out`` and the resolved policy config."""
    for name in ("steps", "batch_size", "chunk_size", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr <= 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    get_config_class(args.policy)  # an unknown --policy fails here, with a did-you-mean
    torch.set_num_threads(args.threads)
    store = EpisodeStore.open(args.data)
    if not store.episode_ids():
        raise DataConfigMismatch(f"{args.data} has no committed episodes to train on")
    obs_mode = infer_obs_mode(store) if args.obs == "auto" else args.obs

    seed_everything(args.seed)  # the fresh network's initial weights follow --seed
    if args.init is not None:
        policy = load_policy(args.init, device=args.device)
        config = policy.config
        check_data_fits_config(store, config)
        dataset = EpisodeWindowDataset(store, config.chunk_size, obs_keys_for(config))
    else:
        dataset = EpisodeWindowDataset(store, args.chunk_size, default_obs_keys(obs_mode))
        config = build_config(args.policy, dataset, obs_mode, store, args.chunk_size, args.stake,
                              config_overrides)
        check_data_fits_config(store, config)
        if obs_keys_for(config) != dataset.obs_keys:  # overrides changed cameras / env state
            dataset = EpisodeWindowDataset(store, config.chunk_size, obs_keys_for(config))
        stats = NormalizationStats.from_arrays(dataset.stats_arrays())
        policy = make_policy(config, stats)
    if config.use_stake and dataset.keyframe_dim != config.keyframe_dim:
        raise DataConfigMismatch(
            f"StaKe keyframe targets of {args.data} have {dataset.keyframe_dim} values, the "
            f"policy config says keyframe_dim={config.keyframe_dim}"
        )
    policy.to(args.device).train()

    loop_cfg = LoopConfig(
        device=args.device,
        steps=args.steps, lr=args.lr, weight_decay=args.weight_decay,
        warmup_steps=min(args.warmup_steps, args.steps), grad_clip=args.grad_clip,
        mixed_precision=args.mixed_precision, seed=args.seed, log_every=args.log_every,
        save_every=args.save_every, progress=not args.quiet,
    )
    batch_fn = make_batch_fn(dataset, policy, args.seed, args.batch_size,
                             augment=args.augment and obs_mode == "rgb")
    frozen = freeze_unreached_parameters(policy, batch_fn(0, 0, 1))
    run_config = {
        "sft": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "policy_config": config.to_dict(),
        "episodes": len(store.episode_ids()),
        "windows": len(dataset),
        "frozen_unreached_parameters": frozen,
    }
    summary = train(policy, batch_fn, loop_cfg, args.out, resume=args.resume, run_config=run_config)
    return {**summary, "out": Path(args.out), "config": config, "windows": len(dataset)}


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(SFTArgs, args=argv, prog="stare-robot train sft")
    try:
        summary = run_sft(args)
    except (DataConfigMismatch, StoreError, FileNotFoundError, ValueError) as err:
        print(f"stare-robot train sft: {err}", file=sys.stderr)
        return 2
    if summary["final"] is not None:  # only the main process writes final/
        last = summary["history"][-1]["loss"] if summary["history"] else float("nan")
        print(f"trained {args.steps} steps on {summary['world_size']} process(es) "
              f"(final loss {last:.4f}) -> {summary['final']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
