"""SFT training throughput (samples/s) and peak memory, state and rgb modes.

    .venv/bin/python benchmarks/sft_throughput.py [--quick] [--threads 1 2]

Each (mode, threads) runs in its own process (peak RSS is per process): it builds the default SFT
policy on real demos (generated into data/ if missing: 20 state / 5 rgb PushCube-v1 episodes),
then times ``--steps`` training steps exactly as the trainer does them — batch assembly
(``make_batch_fn``: window gather, image augmentation in rgb mode, action normalisation),
forward, backward, gradient clipping and AdamW — after 3 warm-up steps.
Writes OUT/sft_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMOS = {"state": 20, "rgb": 5}


def ensure_demos(mode: str) -> Path:
    path = ROOT / "data" / f"PushCube-v1_{mode}_{DEMOS[mode]}.zarr"
    if not path.exists():  # the simulator is imported only here, so it never counts in peak RSS
        from stare_robot.sim.demos import generate_demos

        generate_demos("PushCube-v1", DEMOS[mode], 0, path, obs_mode=mode, progress=False)
    return path


def child(mode: str, threads: int, steps: int, batch_size: int) -> dict:
    import numpy as np
    import torch

    from stare_robot.data.dataset import EpisodeWindowDataset
    from stare_robot.data.store import EpisodeStore
    from stare_robot.policies import make_policy
    from stare_robot.policies.normalize import NormalizationStats
    from stare_robot.train import sft

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    store = EpisodeStore.open(ensure_demos(mode))
    dataset = EpisodeWindowDataset(store, sft.DEFAULT_CHUNK_SIZE, sft.default_obs_keys(mode))
    config = sft.build_config(sft.DEFAULT_POLICY, dataset, mode, store, sft.DEFAULT_CHUNK_SIZE, True)
    policy = make_policy(config, NormalizationStats.from_arrays(dataset.stats_arrays())).train()
    batch_fn = sft.make_batch_fn(dataset, policy, 0, batch_size, augment=mode == "rgb")
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    times = []
    for step in range(steps + 3):
        t0 = time.perf_counter()
        loss = policy.training_losses(batch_fn(step, 0, 1))["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    step_s = float(np.median(times[3:]))
    return {
        "mode": mode, "threads": threads, "batch_size": batch_size, "steps_timed": steps,
        "policy": config.type, "params_m": round(sum(p.numel() for p in policy.parameters()) / 1e6, 2),
        "median_step_s": round(step_s, 4), "samples_per_s": round(batch_size / step_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_avg": os.getloadavg(),
    }


def main() -> int:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_out_option(parser)
    parser.add_argument("--quick", action="store_true", help="5 timed steps per setting")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", default=["state", "rgb"])
    parser.add_argument("--child", nargs=2, metavar=("MODE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = 5 if args.quick else args.steps
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), steps, args.batch_size)))
        return 0
    for mode in args.modes:
        ensure_demos(mode)  # once, outside the timed processes
    rows = []
    for mode in args.modes:
        for threads in args.threads:
            cmd = [sys.executable, __file__, "--child", mode, str(threads), "--steps", str(steps),
                   "--batch-size", str(args.batch_size)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(row, flush=True)
            rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "sft_throughput" + ("_quick" if args.quick else "")
    result = {
        "command": " ".join([".venv/bin/python", "benchmarks/sft_throughput.py", *sys.argv[1:]]),
        "note": "2 shared CPU cores, other engineers' jobs running (see load_avg per row)",
        "rows": rows,
    }
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out / (name + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
