"""``stare-robot tasks``: every task with its stage family, stage names, robot and eval horizon.

    stare-robot tasks            # a table
    stare-robot tasks --json     # the same rows, machine-readable

The rows come from the task table (:mod:`stare_robot.sim.tasks`), the stage registry
(:func:`stare_robot.stages.get_family`) and the evaluation horizons
(:func:`stare_robot.sim.evaluate.default_max_steps`); nothing starts a simulator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import tyro
from stare_robot.sim.evaluate import default_max_steps
from stare_robot.sim.tasks import TASKS

from stare_robot.stages import get_family


def task_rows() -> list[dict[str, Any]]:
    """One row per task, sorted by name."""
    return [
        {
            "task": spec.name,
            "family": spec.stage_family,
            "stages": list(get_family(spec.stage_family).stage_names),
            "eval_horizon": default_max_steps(spec.name),
            "robot": spec.robot,
            "instruction": spec.instruction,
        }
        for spec in sorted(TASKS.values(), key=lambda s: s.name)
    ]


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ("task", "family", "stages", "horizon", "robot")
    cells = [(r["task"], r["family"], " > ".join(r["stages"]), str(r["eval_horizon"]), r["robot"])
             for r in rows]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [header, *cells])


@dataclass
class TasksArgs:
    """List every task stare-robot knows: stage family and stages, eval horizon, robot."""

    json: bool = False
    """Print the rows as JSON (with each task's instruction)."""


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(TasksArgs, args=argv, prog="stare-robot tasks")
    rows = task_rows()
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
