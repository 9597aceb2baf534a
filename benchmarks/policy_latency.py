"""CPU latency of the default embedded policies: ``predict`` per observation and one training step.

For each action head (flow ``pi0``, discrete ``pi0_tokens``) and observation mode (``rgb``:
128x128 camera + proprio; ``state``: proprio + privileged env state) this measures

* ``predict`` latency for one observation (p50 / p99 / mean over ``--predict-iters`` calls),
  the whole path a server runs: input checks, preprocessing, the model, un-normalisation;
* forward + backward of ``training_losses`` on a batch of 8 (p50 / p99 / mean).

    .venv/bin/python benchmarks/policy_latency.py            # full run (~1-2 min)
    .venv/bin/python benchmarks/policy_latency.py --quick    # smoke run (~20 s)

Writes OUT/policy_latency.json (including the exact command). The machine is shared
(2 cores), so the load average at start and end is recorded next to the numbers.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from bench_out import DEFAULT_OUT
from tqdm.auto import tqdm

from stare_robot.keys import (
    ACTION,
    ACTION_IS_PAD,
    INSTRUCTION,
    KEYFRAME_TARGET,
    OBS_ENV_STATE,
    OBS_STATE,
    STAGE_LABEL,
    obs_rgb,
)
from stare_robot.policies import make_config, make_policy
from stare_robot.policies.normalize import NormalizationStats

ENV_STATE_DIM = 25  # about ManiSkill3 PushCube's flat state width beyond proprioception


@dataclass
class Args:
    quick: bool = False  # fewer iterations, for a smoke run
    threads: int = 1  # torch intra-op threads (the machine has 2 shared cores)
    predict_iters: int = 100
    train_iters: int = 20
    batch_size: int = 8
    out: Path = DEFAULT_OUT
    """Results folder (git-ignored default); publish with --out benchmarks/results."""


def _observation(config, rng: np.random.Generator) -> dict:
    obs = {
        OBS_STATE: rng.normal(size=config.state_dim).astype(np.float32),
        INSTRUCTION: "push the cube to the goal region",
    }
    for cam in config.cameras if config.obs_mode == "rgb" else ():
        obs[obs_rgb(cam)] = rng.integers(0, 256, (config.image_size,) * 2 + (3,), dtype=np.uint8)
    if config.env_state_dim:
        obs[OBS_ENV_STATE] = rng.normal(size=config.env_state_dim).astype(np.float32)
    return obs


def _stats(config, rng: np.random.Generator) -> NormalizationStats:
    arrays = {
        OBS_STATE: rng.normal(size=(500, config.state_dim)),
        ACTION: rng.uniform(-1, 1, size=(500, config.action_dim)),
    }
    if config.env_state_dim:
        arrays[OBS_ENV_STATE] = rng.normal(size=(500, config.env_state_dim))
    return NormalizationStats.from_arrays(arrays)


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "n": len(ms),
    }


def bench_one(policy_type: str, obs_mode: str, args: Args) -> dict:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    env_state_dim = ENV_STATE_DIM if obs_mode == "state" else 0
    config = make_config(policy_type, obs_mode=obs_mode, env_state_dim=env_state_dim)
    policy = make_policy(config, _stats(config, rng)).eval()
    observations = [_observation(config, rng) for _ in range(8)]

    for obs in observations[:3]:  # warm-up: first calls allocate and pick kernels
        policy.predict(obs)
    predict_s = []
    for i in range(args.predict_iters):
        start = time.perf_counter()
        policy.predict(observations[i % len(observations)])
        predict_s.append(time.perf_counter() - start)

    policy.train()
    batch = policy.processor.collate([observations[i % 8] for i in range(args.batch_size)])
    batch[ACTION] = torch.rand(args.batch_size, config.chunk_size, config.action_dim) * 2 - 1
    batch[ACTION_IS_PAD] = torch.zeros(args.batch_size, config.chunk_size, dtype=torch.bool)
    batch[STAGE_LABEL] = torch.randint(0, 2, (args.batch_size,)).float()
    batch[KEYFRAME_TARGET] = torch.randn(args.batch_size, config.keyframe_dim)
    train_s = []
    for i in range(args.train_iters + 2):
        start = time.perf_counter()
        policy.zero_grad(set_to_none=True)
        policy.training_losses(batch)["loss"].backward()
        if i >= 2:  # first two are warm-up
            train_s.append(time.perf_counter() - start)

    return {
        "policy_type": policy_type,
        "obs_mode": obs_mode,
        "parameters": sum(p.numel() for p in policy.parameters()),
        "chunk_size": config.chunk_size,
        "num_inference_steps": config.num_inference_steps if policy_type == "pi0" else None,
        "predict": _summary(predict_s),
        f"forward_backward_batch{args.batch_size}": _summary(train_s),
    }


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv)
    if args.quick:
        args.predict_iters, args.train_iters = 20, 5
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    cases = [(t, m) for t in ("pi0", "pi0_tokens") for m in ("state", "rgb")]
    results = [bench_one(t, m, args) for t, m in tqdm(cases, desc="policies")]
    report = {
        "benchmark": "policy_latency",
        "command": shlex.join([os.path.relpath(sys.executable), *sys.argv]),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "policy_latency.json").write_text(json.dumps(report, indent=2))
    for r in results:
        fb = r[f"forward_backward_batch{args.batch_size}"]
        print(
            f"{r['policy_type']:>10} {r['obs_mode']:>5}  predict p50 {r['predict']['p50_ms']:7.1f} ms"
            f"  p99 {r['predict']['p99_ms']:7.1f} ms   fwd+bwd(B={args.batch_size}) "
            f"p50 {fb['p50_ms']:7.1f} ms  p99 {fb['p99_ms']:7.1f} ms"
        )
    print(f"wrote {args.out / 'policy_latency.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
