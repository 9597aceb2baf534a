"""Speed of the STARE stage engine: offline segmentation + potentials + costs over 1,000,000
timesteps per family (one core), and the online StageTracker's cost per step.

    .venv/bin/python benchmarks/stages_speed.py [--quick]

Data: random-walk trajectories with random flags (every field a family reads), split into
episodes of 100 steps (10,000 episodes) and, separately, one single 1,000,000-step episode.
--quick: 100,000 steps and 500 tracker steps. Writes OUT/stages_speed.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from stare_robot import keys, stages


def random_fields(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every field any family reads, as float32 / bool like a stored episode."""
    def poses(scale, start):
        xyz = np.asarray(start) + np.cumsum(rng.normal(0, scale, (n, 3)), axis=0) % 0.3
        q = rng.normal(size=(n, 4))
        return np.concatenate([xyz, q / np.linalg.norm(q, axis=1, keepdims=True)], 1).astype(np.float32)

    return {
        keys.OBS_EE_POSE: poses(0.01, (0, 0, 0.1)),
        keys.SIM_OBJ_POSE: poses(0.005, (0, 0, 0.02)),
        keys.SIM_GOAL_POS: np.tile(np.float32([0.1, 0.0, 0.02]), (n, 1)),
        keys.SIM_TARGET_POSE: poses(0.0, (0.1, 0, 0.02)),
        keys.SIM_CONTACT: rng.random(n) < 0.3,
        keys.SIM_IS_GRASPED: rng.random(n) < 0.3,
        keys.SIM_SUCCESS: rng.random(n) < 0.01,
        keys.OBS_GRIPPER: rng.random((n, 1)).astype(np.float32),
        keys.OBS_JOINT_POS: rng.normal(size=(n, 9)).astype(np.float32),
        keys.ACTION: rng.uniform(-1, 1, (n, 7)).astype(np.float32),
    }


def time_offline(family: str, traj, lengths, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds for separator (conditions + scan), potentials and costs: wall
    clock, and CPU time of this process (user + system; the machine is shared, so wall time
    includes waiting for a core)."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        seg = stages.run_separator(family, traj, lengths)
        c1 = time.process_time()
        stages.potentials(seg)
        c2 = time.process_time()
        stages.stage_costs(seg)
        w3, c3 = time.perf_counter(), time.process_time()
        run = {
            "segment_cpu_s": c1 - c0, "potentials_cpu_s": c2 - c1, "costs_cpu_s": c3 - c2,
            "total_cpu_s": c3 - c0, "total_wall_s": w3 - w0,
        }
        for name, value in run.items():
            best[name] = min(best.get(name, np.inf), value)
    return best


def time_tracker(family: str, traj, steps: int) -> dict[str, float]:
    """Mean microseconds (CPU and wall) per StageTracker.update, plus reading the potential,
    over ``steps`` steps (episodes of 100)."""
    rows = [{k: v[t] for k, v in traj.items()} for t in range(steps)]
    tracker = stages.StageTracker(family)
    w0, c0 = time.perf_counter(), time.process_time()
    for t, row in enumerate(rows):
        if t % 100 == 0:
            tracker.reset()
        tracker.update(row)
        _ = tracker.potential
    return {
        "cpu_us_per_step": (time.process_time() - c0) / steps * 1e6,
        "wall_us_per_step": (time.perf_counter() - w0) / steps * 1e6,
    }


def main() -> None:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_option(parser)
    parser.add_argument("--quick", action="store_true", help="100,000 steps, 500 tracker steps")
    args = parser.parse_args()
    results_path = args.out / "stages_speed.json"
    n = 100_000 if args.quick else 1_000_000
    tracker_steps = 500 if args.quick else 5_000
    episode_len = 100
    rng = np.random.default_rng(0)
    traj = random_fields(n, rng)
    lengths = [episode_len] * (n // episode_len)
    results = {}
    for family in stages.family_names():
        batched = time_offline(family, traj, lengths, repeats=3)
        single = time_offline(family, traj, None, repeats=3)
        tracker = time_tracker(family, traj, tracker_steps)
        results[family] = {
            f"episodes_of_{episode_len}": batched,
            "one_episode": single,
            "tracker": tracker,
        }
        print(f"{family:<13} {n:,} steps, CPU {batched['total_cpu_s']:.3f} s in {len(lengths):,} "
              f"episodes (separator {batched['segment_cpu_s']:.3f}, potentials "
              f"{batched['potentials_cpu_s']:.3f}, costs {batched['costs_cpu_s']:.3f}; wall "
              f"{batched['total_wall_s']:.3f}); one episode CPU {single['total_cpu_s']:.3f} s; "
              f"tracker {tracker['cpu_us_per_step']:.0f} us/step CPU "
              f"({tracker['wall_us_per_step']:.0f} wall)")
    out = {
        "command": "python benchmarks/" + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "timesteps": n,
        "episode_length": episode_len,
        "tracker_steps": tracker_steps,
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "cpu": platform.processor() or platform.machine(), "threads": 1},
        "load_average_1min_at_start": os.getloadavg()[0],
        "note": "best of 3 runs; times include computing every family condition from raw fields; "
        "CPU = process time (user + system), wall includes waiting on a shared 2-core machine",
        "families": results,
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(out, indent=1))
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
