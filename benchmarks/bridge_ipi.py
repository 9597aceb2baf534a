"""The IPI main job on the four SimplerEnv-WidowX tasks: success and grasp success after each step.

    MS_ASSET_DIR=<unpacked pack>/simpler_assets .venv/bin/python benchmarks/bridge_ipi.py \\
        [--task PutCarrotOnPlateInScene-v1 [TASK ...]] [--work runs/bridge_ipi]
    .venv/bin/python benchmarks/bridge_ipi.py --quick      # tiny budget, one task, a smoke run

For each task, ``stare-robot ipi`` (state policy, the embedded tiny pi0) with a budget that fits
the 60-step Bridge episodes on 2 CPU cores: 30 scripted-expert demos, 1500 SFT steps, 24 rollouts
for preference pairs, 60 STA-TPO steps, 4 STA-PPO iterations of 16 episodes, and held-out
evaluation after each step on 50 seeds from 10 000 (60-step horizon). The committed results
predate the held-out rollouts (20, seeds 30 000..) that now select STA-TPO's checkpoint. Each
task runs in ``--work``/TASK and resumes there, so tasks can run in parallel processes and a
later run with all of them only collects the table. Each task's result replaces its entry in
OUT/bridge_ipi.json (--quick: bridge_ipi_quick.json), and its IPI report is
copied to OUT/bridge_ipi/TASK/.

Without ``MS_ASSET_DIR`` the test asset pack is unpacked to a temporary directory. Its two table
meshes and the eggplant's visual mesh are stand-ins (see its README): results are for this pack,
not the published SimplerEnv scenes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("PutSpoonOnTableClothInScene-v1", "PutCarrotOnPlateInScene-v1",
         "StackGreenCubeOnYellowCubeBakedTexInScene-v1", "PutEggplantInBasketScene-v1")
BUDGET = {"demos": 30, "sft_steps": 1500, "rollouts": 24, "tpo_steps": 60, "ppo_iterations": 4,
          "ppo_episodes": 16, "eval_episodes": 50}


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_out_option(parser)
    parser.add_argument("--task", nargs="+", default=list(TASKS))
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bridge_ipi")
    parser.add_argument("--quick", action="store_true", help="tiny budget (smoke run)")
    args = parser.parse_args()
    if args.quick and args.task == list(TASKS):
        args.task = [TASKS[1]]

    from bridge_expert import STAND_IN_NOTE, ensure_assets
    from ipi_table import run_tasks
    from stare_robot.sim.ipi import IPIArgs

    def make_ipi(task: str) -> IPIArgs:
        budget = dict(BUDGET) if not args.quick else {}
        return IPIArgs(task=task, out=args.work / task, budget="tiny" if args.quick else "default",
                       compare_ppo=False, num_envs=1, quiet=True, **budget)

    with tempfile.TemporaryDirectory() as assets:
        ensure_assets(Path(assets))
        run_tasks("bridge_ipi", args.task, make_ipi, args.quick,
                  {"note": STAND_IN_NOTE, "budget": BUDGET}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
