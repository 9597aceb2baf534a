"""Scripted expert on the four SimplerEnv-WidowX tasks: success rate, failure reasons, stages.

    MS_ASSET_DIR=<unpacked pack>/simpler_assets .venv/bin/python benchmarks/bridge_expert.py [--quick] [--seeds N]

Without ``MS_ASSET_DIR`` the test asset pack (../shared/assets/maniskill_widowx_bridge_assets.tgz)
is unpacked to a temporary directory. For each task, ``stare-robot demos``'s generator tries seeds
0 .. N-1 once each (default 30; --quick: 3) and keeps the successes; reported per task: success
rate (kept / tried), failure reasons, demo lengths and the share within the 60-step evaluation
horizon, and whether the STARE stage engine finds every stage, in order, in each kept demo.
Writes OUT/bridge_expert.json.

The pack's two table meshes and the eggplant's visual mesh are stand-ins (see its README): these
rates are for this pack, close to but not the same scenes as the published SimplerEnv ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

PACK = Path(__file__).resolve().parents[2] / "shared" / "assets" / "maniskill_widowx_bridge_assets.tgz"
HORIZON = 60
STAND_IN_NOTE = (
    "asset pack with stand-in meshes (both Bridge tables, eggplant visual): rates are for this "
    "pack, close to but not identical with the published SimplerEnv scenes"
)


def ensure_assets(tmp: Path) -> str:
    """MS_ASSET_DIR, unpacking the test pack into ``tmp`` when it is not set."""
    if os.environ.get("MS_ASSET_DIR"):
        return os.environ["MS_ASSET_DIR"]
    with tarfile.open(PACK) as tar:
        tar.extractall(tmp, filter="data")
    os.environ["MS_ASSET_DIR"] = str(tmp / "simpler_assets")
    return os.environ["MS_ASSET_DIR"]


def stages_in_order(store_path: Path) -> tuple[int, list[dict]]:
    """(episodes whose segmentation visits every stage in order and ends in the last, misses)."""
    from stare_robot import keys, stages
    from stare_robot.data.store import EpisodeStore
    from stare_robot.stages.annotate import fields_needed, resolve_family

    passed, misses = 0, []
    for reader in EpisodeStore.open(store_path):
        family = resolve_family(None, reader.attrs)
        traj = reader.load([k for k in fields_needed(family) if k in reader])
        stage = stages.run_separator(family, traj).stage
        counts = np.bincount(stage, minlength=family.num_stages)
        ok = bool(np.all(counts > 0) and np.all(np.diff(stage) >= 0) and stage[-1] == family.num_stages - 1)
        passed += ok
        if not ok:
            misses.append({"seed": reader.attrs.get(keys.ATTR_SEED), "steps_per_stage": counts.tolist()})
    return passed, misses


def main() -> int:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_out_option(parser)
    parser.add_argument("--quick", action="store_true", help="3 seeds per task")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--tasks", nargs="*", default=None)
    args = parser.parse_args()
    results_path = args.out / "bridge_expert.json"
    seeds = 3 if args.quick else args.seeds

    import torch

    torch.set_num_threads(1)
    from stare_robot.sim.demos import generate_demos
    from stare_robot.sim.tasks import TASKS, WIDOWX

    tasks = args.tasks or [name for name, spec in TASKS.items() if spec.robot == WIDOWX]
    results: dict = {
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
        "note": STAND_IN_NOTE,
        "seeds_per_task": seeds,
        "load_average_start": os.getloadavg(),
        "tasks": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["ms_asset_dir"] = "temporary unpack of the test pack" if not os.environ.get(
            "MS_ASSET_DIR") else os.environ["MS_ASSET_DIR"]
        ensure_assets(Path(tmp))
        for task in tasks:
            out = Path(tmp) / f"{task}.zarr"
            summary = generate_demos(task, num=seeds, seed=0, out=out, obs_mode="state",
                                     sim_backend="physx_cpu", max_attempts=seeds)
            lengths = summary["lengths"]
            passed, misses = stages_in_order(out) if lengths else (0, [])
            row = {
                "tried": summary["attempted"],
                "succeeded": summary["kept"],
                "success_rate": summary["kept"] / summary["attempted"],
                "failed": summary["failed"],
                "failed_seeds": sorted(set(range(seeds)) - set(summary["seeds"])),
                "length_min_mean_max": [min(lengths), float(np.mean(lengths)), max(lengths)] if lengths else None,
                f"within_{HORIZON}_steps": float(np.mean(np.asarray(lengths) <= HORIZON)) if lengths else None,
                "stages_all_in_order": passed,
                "stage_misses": misses,
                "seconds": summary["seconds"],
                "seconds_per_episode": summary["seconds"] / summary["attempted"],
            }
            results["tasks"][task] = row
            print(f"{task}: {row['succeeded']}/{row['tried']} succeeded, failures {row['failed']}, "
                  f"lengths {row['length_min_mean_max']}, stages in order {passed}/{len(lengths)}",
                  flush=True)
    results["load_average_end"] = os.getloadavg()
    results_path.parent.mkdir(parents=True, exist_ok=True)
    name = results_path if not args.quick else results_path.with_name("bridge_expert_quick.json")
    name.write_text(json.dumps(results, indent=2))
    print(f"-> {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
