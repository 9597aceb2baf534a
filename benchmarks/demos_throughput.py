"""Expert-demo generation speed: episodes per minute for every task, state and rgb.

    .venv/bin/python benchmarks/demos_throughput.py [--quick]

Writes OUT/demos_throughput.json (with the command that produced it). Each cell
generates ``num`` demos into a fresh temporary store; the time includes env creation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from stare_robot.sim.demos import generate_demos
from stare_robot.sim.tasks import TASKS


def main() -> None:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_option(parser)
    parser.add_argument("--quick", action="store_true", help="2 demos per cell instead of 10")
    parser.add_argument("--num", type=int, default=None)
    args = parser.parse_args()
    results_path = args.out / "demos_throughput.json"
    num = args.num or (2 if args.quick else 10)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in sorted(TASKS):
            for obs_mode in ("state", "rgb"):
                start = time.perf_counter()
                summary = generate_demos(
                    task,
                    num,
                    0,
                    Path(tmp) / f"{task}-{obs_mode}.zarr",
                    obs_mode=obs_mode,
                    progress=False,
                )
                seconds = time.perf_counter() - start
                rows.append(
                    {
                        "task": task,
                        "obs_mode": obs_mode,
                        "kept": summary["kept"],
                        "attempted": summary["attempted"],
                        "failed": summary["failed"],
                        "seconds": round(seconds, 2),
                        "episodes_per_min": round(60 * summary["kept"] / seconds, 2),
                        "mean_steps": round(
                            sum(summary["lengths"]) / max(1, len(summary["lengths"])), 1
                        ),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(
        json.dumps(
            {
                "command": " ".join(
                    [".venv/bin/python", "benchmarks/demos_throughput.py", *sys.argv[1:]]
                ),
                "num_per_cell": num,
                "machine_note": "2 shared CPU cores, physx_cpu, lavapipe rendering",
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
