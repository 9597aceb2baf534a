"""Multi-process SFT: ``accelerate launch --multi_gpu --num_processes 2`` on CPU (gloo) vs one.

    .venv/bin/python benchmarks/sft_multiprocess.py [--quick] [--steps 200]

Both runs use the same data, seed and global batch (each of the 2 ranks takes half of it, see
``stare_robot.train.sft.batch_indices``), so their loss curves should agree up to the
flow-matching noise draws. (``--cpu --num_processes 2`` would need MPI, which this machine lacks:
accelerate then silently starts one process; ``--multi_gpu`` goes through torchrun, and the
loop's ``Accelerator(cpu=True)`` makes the two ranks talk over gloo.) The benchmark checks the
world size the trainer reports. Reports both curves, their moving averages and the largest relative
gap between the averages; writes OUT/sft_multiprocess.json (+ .png).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def moving_average(x: list[float], window: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.convolve(x, np.ones(window) / window, mode="valid")


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and the number of processes the trainer says it trained on."""
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True, text=True)
    found = re.search(r"on (\d+) process", out.stdout)
    if found is None:
        raise RuntimeError(f"no 'trained ... on N process(es)' line in: {out.stdout}{out.stderr}")
    return time.perf_counter() - start, int(found.group(1))


def main() -> int:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_out_option(parser)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="40 steps, 10 demos")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    steps, demos = (40, 10) if args.quick else (args.steps, 20)

    from stare_robot.sim.demos import generate_demos

    data = ROOT / "data" / f"PushCube-v1_state_{demos}.zarr"
    if not data.exists():
        generate_demos("PushCube-v1", demos, 0, data, obs_mode="state", progress=False)
    out = ROOT / "runs" / "sft_multiprocess"
    common = ["--data", str(data), "--steps", str(steps), "--batch-size", str(args.batch_size),
              "--save-every", str(10**9), "--warmup-steps", "20", "--quiet", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single_s, single_world = run([sys.executable, "-m", "stare_robot.train.sft", *common,
                    "--out", str(out / "single")], env)
    multi_s, multi_world = run([str(VENV_BIN / "accelerate"), "launch", "--multi_gpu",
                   "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "-m", "stare_robot.train.sft", *common, "--out", str(out / "two_procs")], env)
    if (single_world, multi_world) != (1, 2):
        raise RuntimeError(f"expected 1 and 2 processes, got {single_world} and {multi_world}")
    single = [h["loss"] for h in json.loads((out / "single" / "history.json").read_text())]
    multi = [h["loss"] for h in json.loads((out / "two_procs" / "history.json").read_text())]
    window = max(5, steps // 10)
    a, b = moving_average(single, window), moving_average(multi, window)
    gap = np.abs(a - b) / np.maximum(np.abs(a), 1e-9)
    result = {
        "command": " ".join([".venv/bin/python", "benchmarks/sft_multiprocess.py", *sys.argv[1:]]),
        "steps": steps, "global_batch_size": args.batch_size, "demos": demos,
        "single_process": {"wall_s": round(single_s, 1), "loss_first": single[0],
                           "loss_last": single[-1]},
        "two_processes": {"world_size": multi_world, "wall_s": round(multi_s, 1), "loss_first": multi[0],
                          "loss_last": multi[-1]},
        "moving_average_window": window,
        "max_relative_gap_of_moving_averages": round(float(gap.max()), 4),
        "mean_relative_gap_of_moving_averages": round(float(gap.mean()), 4),
        "loss_single": single, "loss_two_processes": multi,
        "load_avg_end": os.getloadavg(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "sft_multiprocess" + ("_quick" if args.quick else "")
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(single, alpha=0.3, color="C0")
    ax.plot(multi, alpha=0.3, color="C1")
    ax.plot(np.arange(len(a)) + window - 1, a, color="C0", label="1 process")
    ax.plot(np.arange(len(b)) + window - 1, b, color="C1", label="2 processes (gloo)")
    ax.set_xlabel("step")
    ax.set_ylabel("SFT loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / f"{name}.png", dpi=110)
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("loss_")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
