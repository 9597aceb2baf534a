"""SFT on scripted WidowX demos of one SimplerEnv task, then evaluation as in the paper's Table 1.

    MS_ASSET_DIR=<unpacked pack>/simpler_assets .venv/bin/python benchmarks/bridge_sft.py [--quick]
        [--task PutCarrotOnPlateInScene-v1 [TASK ...]] [--demos 20] [--steps 1000] [--episodes 20]

Without ``MS_ASSET_DIR`` the test asset pack is unpacked to a temporary directory. Steps:
``stare-robot demos`` (scripted expert, state mode, seeds 0 upward) -> ``stare-robot train sft``
(the embedded tiny pi0, state policy) -> ``stare-robot eval`` on seeds 10 000 upward with the default
60-step horizon: success, grasp success and conditional stage success, for each ``--task`` in turn.
Each task's result replaces that task's entry in OUT/bridge_sft.json (--quick:
bridge_sft_quick.json), so tasks can be measured in separate runs.

The pack's two table meshes and the eggplant's visual mesh are stand-ins (see its README); results
are for this pack, not the published SimplerEnv scenes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def run_task(task: str, args, generate_demos, sft_main, eval_main) -> dict:
    """Demos -> SFT -> evaluation of one task in a temporary folder; returns its numbers."""
    result: dict = {
        "command": " ".join([sys.executable.split("/")[-1], sys.argv[0], "--task", task,
                             "--demos", str(args.demos), "--steps", str(args.steps),
                             "--episodes", str(args.episodes)]),
        "task": task,
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        data, run, out = Path(tmp) / "demos.zarr", Path(tmp) / "sft", Path(tmp) / "eval"
        demos = generate_demos(task, num=args.demos, seed=0, out=data, sim_backend="physx_cpu")
        result["demos"] = {k: demos[k] for k in ("attempted", "kept", "failed", "seconds")}
        start = time.perf_counter()
        code = sft_main(["--data", str(data), "--out", str(run), "--steps", str(args.steps),
                         "--save-every", str(args.steps), "--threads", "1", "--quiet"])
        result["sft"] = {"steps": args.steps, "exit_code": code, "seconds": time.perf_counter() - start}
        start = time.perf_counter()
        code = eval_main(["--ckpt", str(run / "final"), "--task", task, "--episodes",
                          str(args.episodes), "--out", str(out), "--sim-backend", "physx_cpu"])
        summary = json.loads((out / "results.json").read_text())["policy"]
        summary.pop("per_episode", None)
        result["eval"] = {**summary, "exit_code": code, "seconds": time.perf_counter() - start}
    result["load_average_end"] = os.getloadavg()
    return result


def main() -> int:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_out_option(parser)
    parser.add_argument("--quick", action="store_true", help="3 demos, 20 steps, 2 episodes")
    parser.add_argument("--task", nargs="+", default=["PutCarrotOnPlateInScene-v1"])
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    if args.quick:
        args.demos, args.steps, args.episodes = 3, 20, 2

    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bridge_expert import STAND_IN_NOTE, ensure_assets
    from stare_robot.sim.demos import generate_demos
    from stare_robot.sim.evaluate import main as eval_main

    from stare_robot.train.sft import main as sft_main

    path = args.out / ("bridge_sft_quick.json" if args.quick else "bridge_sft.json")
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc = {"benchmark": "bridge_sft", "note": STAND_IN_NOTE, "tasks": doc.get("tasks", {})}
    with tempfile.TemporaryDirectory() as assets:  # unpacked once, for every task
        ensure_assets(Path(assets))
        for task in args.task:
            doc["tasks"][task] = run_task(task, args, generate_demos, sft_main, eval_main)
            path.write_text(json.dumps(doc, indent=2))
            ev = doc["tasks"][task]["eval"]
            print(f"{task}: SFT success {ev['success_rate']:.2f}, grasp {ev['grasp_rate']} over "
                  f"{ev['episodes']} episodes -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
