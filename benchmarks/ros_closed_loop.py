"""Closed-loop sim-to-ROS equivalence: a checkpoint's success through the whole lock-step graph
vs in-process evaluation on the same seeds (issue 8, check b).

1. In process: ``stare_robot.sim.evaluate.evaluate`` (what ``stare-robot eval`` runs), ManiSkill's
   own ``pd_ee_delta_pose`` controller, the policy called directly.
2. Through the graph, every node its own process: sim_robot (lock-step, ``pd_joint_pos``) ->
   policy_client -> ``stare-robot serve`` (real uvicorn) -> robot_bridge (IK from the URDF) ->
   sim_robot. Same seeds, same horizon (``max_steps``), same chunk execution (``execute_steps``),
   same instruction; episodes end like in-process ones (tests/ros/graph_episodes.py).

Reported: success counts and rates of both, the Wilson 95 % interval of each, whether the graph's
rate lies inside the in-process interval, per-episode agreement and lengths.

    .venv/bin/python benchmarks/ros_closed_loop.py [--quick] [--ckpt runs/PushCube-v1/sft/final]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "ros")]
os.environ.setdefault("ROS_DOMAIN_ID", str(np.random.default_rng().integers(101, 200)))
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"

@dataclass
class Args:
    """Closed-loop success through the ROS graph vs in-process evaluation."""

    ckpt: Path = ROOT / "runs" / "PushCube-v1" / "sft" / "final"
    task: str = "PushCube-v1"
    episodes: int = 20
    seed: int = 10_000  # stare_robot.sim.evaluate.EVAL_SEED_START
    max_steps: int | None = None  # None: the task's evaluation default
    execute_steps: int = 2  # stare_robot.sim.evaluate.DEFAULT_EXECUTE_STEPS
    quick: bool = False  # 5 episodes
    out: Path = ROOT / "runs" / "benchmarks"  # bench_out.DEFAULT_OUT
    """Results folder (git-ignored default); publish with --out benchmarks/results."""
    tag: str = ""  # results name suffix: ros_closed_loop_TAG.json (e.g. pickcube)


def run_graph(args: Args, policy, seeds: list[int], max_steps: int, instruction: str) -> list[dict]:
    import rclpy
    from graph_episodes import run_graph_episodes

    rclpy.init()
    node = rclpy.create_node("ros_closed_loop_bench")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return run_graph_episodes(node, Path(tmp), args.ckpt, policy, args.task, seeds, max_steps,
                                      args.execute_steps, instruction)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def summary(outcomes: list[dict]) -> dict:
    from stare_robot.eval.metrics import wilson_interval

    wins, n = sum(o["success"] for o in outcomes), len(outcomes)
    return {"successes": wins, "episodes": n, "success_rate": wins / n,
            "wilson95": list(wilson_interval(wins, n)),
            "mean_length": float(np.mean([o["length"] for o in outcomes]))}


def main(argv: list[str] | None = None) -> int:
    import torch
    import tyro

    args = tyro.cli(Args, args=argv)
    torch.set_num_threads(1)
    from stare_robot.sim.evaluate import default_max_steps, evaluate
    from stare_robot.sim.tasks import get_task

    from stare_robot.policies import load_policy

    episodes = 5 if args.quick else args.episodes
    seeds = list(range(args.seed, args.seed + episodes))
    max_steps = args.max_steps or default_max_steps(args.task)
    instruction = get_task(args.task).instruction
    policy = load_policy(args.ckpt)
    load = {"start": os.getloadavg()}

    t0 = time.monotonic()
    in_proc, _ = evaluate(policy, args.task, episodes, args.seed, max_steps, args.execute_steps,
                          sim_backend="physx_cpu")
    in_proc_s = time.monotonic() - t0
    local = [{"seed": e["seed"], "success": bool(e["success"]), "length": int(e["length"])}
             for e in in_proc["per_episode"]]

    t0 = time.monotonic()
    graph = run_graph(args, policy, seeds, max_steps, instruction)
    graph_s = time.monotonic() - t0
    load["end"] = os.getloadavg()

    a, b = summary(local), summary(graph)
    lo, hi = a["wilson95"]
    result = {
        "benchmark": "ros_closed_loop",
        "command": " ".join([".venv/bin/python", "benchmarks/ros_closed_loop.py", *(argv or sys.argv[1:])]),
        "ckpt": str(args.ckpt.relative_to(ROOT) if args.ckpt.is_relative_to(ROOT) else args.ckpt),
        "task": args.task, "seeds": [seeds[0], seeds[-1]], "max_steps": max_steps,
        "execute_steps": args.execute_steps, "instruction": instruction,
        "policy_inputs": sorted(policy.metadata.inputs),
        "in_process": a, "graph": b,
        "graph_rate_inside_in_process_ci95": bool(lo <= b["success_rate"] <= hi),
        "per_episode_agreement": float(np.mean([x["success"] == y["success"] for x, y in zip(local, graph)])),
        "per_episode": [{"seed": x["seed"], "in_process": [x["success"], x["length"]],
                         "graph": [y["success"], y["length"]], "graph_seconds": y["seconds"]}
                        for x, y in zip(local, graph)],
        "wall_seconds": {"in_process": round(in_proc_s, 1), "graph": round(graph_s, 1)},
        "load_average": load,
        "machine": {"cpus": os.cpu_count(), "note": "2 cores shared with other engineers' jobs"},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("ros_closed_loop" + (f"_{args.tag}" if args.tag else "") + ".json")
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("in_process", "graph", "graph_rate_inside_in_process_ci95",
                                             "per_episode_agreement", "wall_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
