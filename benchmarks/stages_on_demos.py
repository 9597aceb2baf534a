"""The STARE stage engine on motion-planner demos and random-action rollouts, per task.

    .venv/bin/python benchmarks/stages_on_demos.py [--quick] [--num N] [--random R]

For each task: generates ``num`` successful expert demos (default 100; --quick: 5) with
``stare-robot demos``'s generator, and reports the fraction passing every stage in order (each
stage non-empty, final stage reached), stage-length statistics, keyframe correctness (keyframes
== the first observation after each gripper-command change), tracker/segment agreement, mean
stage costs and conditional stage success. Then ``random`` rollouts (default 20; --quick: 3) of
50 uniformly random actions each, with the stage found online: the distribution of the furthest
stage and of steps per stage. Writes OUT/stages_on_demos.json.
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
from stare_robot.sim.env import make_env
from stare_robot.sim.tasks import TASKS, get_task
from tqdm.auto import tqdm

from stare_robot import keys, stages
from stare_robot.data.store import EpisodeStore
from stare_robot.stages.annotate import fields_needed, resolve_family

RANDOM_STEPS = 50


def command_change_steps(action: np.ndarray) -> list[int]:
    """First observation showing each gripper-command change (the Panda starts open)."""
    closed = action[:, 6] < 0
    before = np.concatenate([[False], closed[:-1]])
    return [int(t) + 1 for t in np.flatnonzero(closed != before) if t + 1 < len(closed)]


def check_demos(path: Path) -> dict:
    store = EpisodeStore.open(path)
    lengths, costs, furthest, success = [], [], [], []
    passed = keyframes_ok = tracker_ok = 0
    failures, keyframe_misses = [], []
    family = None
    for reader in store:
        family = resolve_family(None, reader.attrs)
        traj = reader.load([k for k in fields_needed(family) + [keys.SIM_SUCCESS] if k in reader])
        seg = stages.run_separator(family, traj)
        counts = np.bincount(seg.stage, minlength=family.num_stages)
        ok = bool(np.all(counts > 0) and seg.stage[-1] == family.num_stages - 1)
        passed += ok
        if not ok:
            failures.append({
                "episode": reader.episode_id,
                "seed": reader.attrs.get(keys.ATTR_SEED),
                "steps_per_stage": counts.tolist(),
                "ever_grasped": bool(np.any(traj.get(keys.SIM_IS_GRASPED, False))),
            })
        found, wanted = stages.gripper_keyframes(traj), command_change_steps(traj[keys.ACTION])
        keyframes_ok += found == wanted
        if found != wanted:
            keyframe_misses.append({"episode": reader.episode_id, "seed": reader.attrs.get(keys.ATTR_SEED),
                                    "keyframes": found, "command_changes": wanted})
        tracker = stages.StageTracker(family)
        online = [tracker.update({k: v[t] for k, v in traj.items()}) for t in range(len(seg.stage))]
        tracker_ok += online == seg.stage.tolist()
        lengths.append(counts)
        costs.append(stages.stage_costs(seg)[0])
        furthest.append(int(seg.furthest_stage[0]))
        success.append(bool(reader.attrs.get(keys.ATTR_SUCCESS)))
    n = len(lengths)
    lengths, costs = np.array(lengths), np.array(costs)
    names = list(family.stage_names)
    return {
        "family": family.name,
        "episodes": n,
        "pass_all_stages_in_order": passed / n,
        "keyframes_correct": keyframes_ok / n,
        "tracker_equals_segment": tracker_ok / n,
        "failures": failures,
        "keyframe_misses": keyframe_misses,
        "stage_length": {
            name: {"mean": float(lengths[:, k].mean()), "min": int(lengths[:, k].min()),
                   "max": int(lengths[:, k].max())}
            for k, name in enumerate(names)
        },
        "mean_cost": {name: float(np.nanmean(costs[:, k])) if np.isfinite(costs[:, k]).any() else None
                      for k, name in enumerate(names)},
        "conditional_success": [r.to_dict() for r in
                                stages.conditional_stage_success(furthest, names, success)],
    }


def random_rollouts(task: str, num: int, seed: int) -> dict:
    spec = get_task(task)
    family = stages.get_family(spec.stage_family, **(
        {"obj_half_size": spec.obj_half_size} if spec.stage_family != "gripper" else {}))
    rng = np.random.default_rng(seed)
    steps_in = np.zeros(family.num_stages, dtype=int)
    furthest = np.zeros(family.num_stages, dtype=int)
    with make_env(task, obs_mode="state", sim_backend="physx_cpu") as env:
        for episode in range(num):
            step = env.reset(seed=seed + episode)
            tracker = stages.StageTracker(family)
            for _ in range(RANDOM_STEPS):
                tracker.update({**step.privileged, keys.OBS_JOINT_POS: step.obs[keys.OBS_JOINT_POS]})
                steps_in[tracker.stage] += 1
                step = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
            furthest[tracker.stage] += 1
    names = list(family.stage_names)
    return {
        "rollouts": num,
        "steps_each": RANDOM_STEPS,
        "fraction_of_steps_per_stage": dict(zip(names, (steps_in / steps_in.sum()).round(4).tolist())),
        "furthest_stage_counts": dict(zip(names, furthest.tolist())),
    }


def main() -> None:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_option(parser)
    parser.add_argument("--quick", action="store_true", help="5 demos and 3 random rollouts per task")
    parser.add_argument("--num", type=int, default=None, help="demos per task (default 100)")
    parser.add_argument("--random", type=int, default=None, help="random rollouts per task (default 20)")
    parser.add_argument("--tasks", nargs="*", default=sorted(TASKS))
    args = parser.parse_args()
    results_path = args.out / "stages_on_demos.json"
    num = args.num or (5 if args.quick else 100)
    num_random = args.random or (3 if args.quick else 20)
    per_task = {}
    out = {
        "command": "python benchmarks/" + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "demos_per_task": num,
        "random_rollouts_per_task": num_random,
        "tasks": per_task,
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for task in tqdm(args.tasks, desc="tasks"):
            start = time.perf_counter()
            summary = generate_demos(task=task, num=num, seed=0, out=Path(tmp) / f"{task}.zarr",
                                     obs_mode="state", progress=True, sim_backend="physx_cpu")
            result = check_demos(Path(summary["out"]))
            result["demo_generation"] = {k: summary[k] for k in ("attempted", "kept", "failed")}
            result["random_actions"] = random_rollouts(task, num_random, seed=1000)
            result["seconds"] = round(time.perf_counter() - start, 1)
            per_task[task] = result
            print(f"{task}: {result['pass_all_stages_in_order']:.0%} of {result['episodes']} demos pass "
                  f"all stages; keyframes correct {result['keyframes_correct']:.0%}; random rollouts "
                  f"per stage {result['random_actions']['fraction_of_steps_per_stage']}", flush=True)
            results_path.write_text(json.dumps(out, indent=1))  # after every task: partial runs count
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
