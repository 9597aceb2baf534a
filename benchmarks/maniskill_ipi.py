"""The IPI main job on the paper's four ManiSkill3 Franka tasks: success and stage success per step.

    .venv/bin/python benchmarks/maniskill_ipi.py [--task PullCube-v1 [TASK ...]] [--work runs]
    .venv/bin/python benchmarks/maniskill_ipi.py --quick       # tiny budget, one task, a smoke run

Each task is ``stare-robot ipi --task TASK --no-compare-ppo --out WORK/TASK`` on the default
budget (the one ``make demo`` uses: 100 demos, 2000 SFT steps, 40 + 20 rollouts, 60 STA-TPO
steps, 8 STA-PPO iterations of 16 episodes, 100 held-out evaluation seeds from 10 000) — one
budget for all four, tuned for PushCube, so the harder tasks show what it buys them. Plain PPO
is left out (the PPO vs STA-PPO comparison is benchmarks/ppo_learning.py). With the default
``--work runs`` the folders are the ones ``make demo TASK=...`` writes, so a finished
``make demo`` run is collected, not repeated. Tasks resume in their folders, so they can run in
parallel processes; each finished task replaces its entry in
OUT/maniskill_ipi.json (--quick: maniskill_ipi_quick.json) and its IPI report is
copied to OUT/maniskill_ipi/TASK/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("PushCube-v1", "PullCube-v1", "StackCube-v1", "LiftPegUpright-v1")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_out_option(parser)
    parser.add_argument("--task", nargs="+", default=list(TASKS))
    parser.add_argument("--work", type=Path, default=ROOT / "runs")
    parser.add_argument("--quick", action="store_true", help="tiny budget (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.task = args.task[:1] if args.task != list(TASKS) else [TASKS[1]]
        args.work = args.work / "maniskill_ipi_quick"

    from ipi_table import run_tasks
    from stare_robot.sim.ipi import IPIArgs

    def make_ipi(task: str) -> IPIArgs:
        return IPIArgs(task=task, out=args.work / task, budget="tiny" if args.quick else "default",
                       compare_ppo=False, quiet=True)

    run_tasks("maniskill_ipi", args.task, make_ipi, args.quick, {"budget": "default"}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
