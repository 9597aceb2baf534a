"""Rollout throughput: the vectorised env (worker processes) vs raw ManiSkill3 stepping.

    .venv/bin/python benchmarks/vector_env_throughput.py [--obs state|rgb] [--steps 300]

Measured in one run, same task and random actions: (a) the raw ManiSkill3 gym env stepped in
this process, (a') the project's ``SimEnv`` wrapper in this process (policy observation +
privileged state per step: the wrapper's own share of the overhead), (b) ``make_vector_env`` with
1 worker process (overhead ratio = raw rate / vector rate), (c) with 2 worker processes (scaling = 2-process rate / 1-process rate; ideal 2 on two
idle cores). Rates are env steps per second, summed over environments. Writes
OUT/vector_env_throughput_<obs>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _steps_per_s(env, steps: int) -> float:
    """Random-action steps per second of a reset single env; closes it."""
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(-1, 1, 7).astype(np.float32))
    rate = steps / (time.perf_counter() - t)
    env.close()
    return rate


def raw_rate(task: str, obs: str, steps: int) -> float:
    from stare_robot.sim.env import build_maniskill_env
    from stare_robot.sim.tasks import get_task

    from stare_robot import keys

    env = build_maniskill_env(get_task(task), obs, keys.ACTION_SPACE_EE_DELTA,
                              max_episode_steps=10 * steps)
    env.reset(seed=0)
    return _steps_per_s(env, steps)


def wrapped_rate(task: str, obs: str, steps: int) -> float:
    from stare_robot.sim.env import make_env

    env = make_env(task, obs, sim_backend="physx_cpu", max_episode_steps=10 * steps)
    env.reset(seed=0)
    return _steps_per_s(env, steps)


def vector_rate(task: str, obs: str, steps: int, num_envs: int) -> float:
    from stare_robot.sim.vector_env import make_vector_env

    rng = np.random.default_rng(0)
    with make_vector_env(task, num_envs, obs, max_episode_steps=10 * steps) as venv:
        venv.reset(list(range(num_envs)), list(range(num_envs)))
        t = time.perf_counter()
        for _ in range(steps):
            venv.step({i: rng.uniform(-1, 1, 7).astype(np.float32) for i in range(num_envs)})
        return num_envs * steps / (time.perf_counter() - t)


def main() -> int:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_out_option(parser)
    parser.add_argument("--task", default="PushCube-v1")
    parser.add_argument("--obs", default="state", choices=["state", "rgb"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    load0 = os.getloadavg()
    rows = []
    for r in range(args.repeats):  # interleaved, so background load hits every variant alike
        rows.append({
            "repeat": r,
            "raw": raw_rate(args.task, args.obs, args.steps),
            "wrapped": wrapped_rate(args.task, args.obs, args.steps),
            "vector_1": vector_rate(args.task, args.obs, args.steps, 1),
            "vector_2": vector_rate(args.task, args.obs, args.steps, 2),
        })
        print(rows[-1], flush=True)
    best = {k: max(row[k] for row in rows) for k in ("raw", "wrapped", "vector_1", "vector_2")}
    doc = {
        "benchmark": "vector_env_throughput",
        "command": " ".join([".venv/bin/python", "benchmarks/vector_env_throughput.py", *sys.argv[1:]]),
        "settings": vars(args),
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "rows_steps_per_s": rows,
        "best_steps_per_s": best,
        "overhead_ratio_raw_over_vector1": best["raw"] / best["vector_1"],
        "overhead_ratio_raw_over_wrapped": best["raw"] / best["wrapped"],
        "overhead_ratio_wrapped_over_vector1": best["wrapped"] / best["vector_1"],
        "scaling_vector2_over_vector1": best["vector_2"] / best["vector_1"],
    }
    out = args.out / f"vector_env_throughput_{args.obs}.json"
    out.write_text(json.dumps(doc, indent=1))
    print(json.dumps({k: v for k, v in doc.items() if k.startswith(("best", "overhead", "scaling"))},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
