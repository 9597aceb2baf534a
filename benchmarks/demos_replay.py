"""Open-loop replay of expert demos: does every recorded episode reproduce its success?

    .venv/bin/python benchmarks/demos_replay.py [--quick] [--num N]

For each task, generates ``num`` demos (default 100; --quick: 5), replays each from its recorded
seed in a fresh env and reports the fraction that succeed again, the largest object-position
deviation from the recording, demo length stats and generation yield. Writes
OUT/demos_replay.json with the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from stare_robot.sim.demos import generate_demos
from stare_robot.sim.replay import replay_episode
from stare_robot.sim.tasks import TASKS
from tqdm.auto import tqdm

from stare_robot.data.store import EpisodeStore


def main() -> None:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_option(parser)
    parser.add_argument("--quick", action="store_true", help="5 demos per task")
    parser.add_argument("--num", type=int, default=None)
    parser.add_argument("--tasks", nargs="*", default=sorted(TASKS))
    args = parser.parse_args()
    results_path = args.out / "demos_replay.json"
    num = args.num or (5 if args.quick else 100)
    per_task = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            start = time.perf_counter()
            out = Path(tmp) / f"{task}.zarr"
            summary = generate_demos(task, num, 0, out, progress=True)
            gen_s = time.perf_counter() - start
            results = [
                replay_episode(ep)
                for ep in tqdm(list(EpisodeStore.open(out)), desc=f"replay {task}")
            ]
            lengths = np.array(summary["lengths"])
            per_task[task] = {
                "kept": summary["kept"],
                "attempted": summary["attempted"],
                "failed": summary["failed"],
                "replay_success_fraction": float(np.mean([r["success"] for r in results])),
                "max_obj_pos_error_m": float(max(r["max_obj_pos_error"] for r in results)),
                "length_mean": float(lengths.mean()),
                "length_min": int(lengths.min()),
                "length_median": float(np.median(lengths)),
                "length_max": int(lengths.max()),
                "generate_seconds": round(gen_s, 1),
            }
            print(task, json.dumps(per_task[task]), flush=True)
            results_path.parent.mkdir(parents=True, exist_ok=True)
            results_path.write_text(
                json.dumps(
                    {
                        "command": " ".join(
                            [".venv/bin/python", "benchmarks/demos_replay.py", *sys.argv[1:]]
                        ),
                        "num_per_task": num,
                        "tasks": per_task,
                    },
                    indent=2,
                )
            )


if __name__ == "__main__":
    main()
