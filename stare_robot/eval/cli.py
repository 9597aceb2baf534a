"""``stare-robot report``: put evaluations side by side.

    stare-robot report sim2real --sim runs/PushCube-v1/eval/sft/results.json \\
        --recorded data/robot.zarr            # -> runs/PushCube-v1/eval/sft/sim2real/

``--sim`` is the ``results.json`` that ``stare-robot eval`` writes (one or more named runs);
``--recorded`` is an episode store (robot recordings or sim rollouts recorded through ROS),
evaluated with :func:`stare_robot.eval.recorded.evaluate_store`. The report has the same JSON,
markdown table and plot as a simulation evaluation, written to ``--out`` (default: a ``sim2real``
folder beside ``--sim``, so a report never lands in the repository by accident).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro

from stare_robot.data.errors import StoreError
from stare_robot.eval.recorded import RecordedEvalError, evaluate_store
from stare_robot.eval.report import write_report

REPORTS = ("sim2real",)


@dataclass
class Sim2RealArgs:
    sim: Path  # results.json of `stare-robot eval` (simulation)
    recorded: Path  # episode store of recorded episodes
    out: Path | None = None  # report folder; default: sim2real/ beside the --sim results.json
    recorded_name: str = "recorded"


def report_folder(args: Sim2RealArgs) -> Path:
    """``--out``, else ``sim2real/`` in the folder of the simulation results (the run folder)."""
    return args.out if args.out is not None else args.sim.parent / "sim2real"


def sim2real(args: Sim2RealArgs) -> dict:
    if not args.sim.is_file():
        raise FileNotFoundError(f"--sim {args.sim}: no such results.json (run `stare-robot eval` first)")
    sim = json.loads(args.sim.read_text())
    if not isinstance(sim, dict) or not all(isinstance(v, dict) and "success_rate" in v for v in sim.values()):
        raise ValueError(f"--sim {args.sim} is not an evaluation results.json (name -> summary)")
    results = {f"sim: {name}": summary for name, summary in sim.items()}
    results[args.recorded_name] = evaluate_store(args.recorded)
    write_report(results, report_folder(args), title="simulation vs recorded episodes")
    return results


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: stare-robot report {{{','.join(REPORTS)}}} [ARGS...]\n\n"
              "  sim2real  a simulation evaluation next to recorded episodes (same metrics)")
        return 0
    if not argv or argv[0] not in REPORTS:
        print(f"usage: stare-robot report {{{','.join(REPORTS)}}} [ARGS...]  (got {argv[:1] or 'nothing'})",
              file=sys.stderr)
        return 2
    args = tyro.cli(Sim2RealArgs, args=argv[1:], prog="stare-robot report sim2real")
    try:
        results = sim2real(args)
    except (FileNotFoundError, ValueError, RecordedEvalError, StoreError) as err:
        print(f"stare-robot report: {err}", file=sys.stderr)
        return 2
    for name, r in results.items():
        print(f"{name}: success {100 * r['success_rate']:.1f} % over {r['episodes']} episodes")
    print(f"report written to {report_folder(args)}")
    return 0
