"""Shared by the IPI benchmarks (bridge_ipi.py, maniskill_ipi.py): one task's IPI run as a JSON entry.

A benchmark gives ``run_tasks`` its tasks and how to make each task's ``IPIArgs``; every task
runs in its own folder (resumable, so tasks can run in parallel processes) and, once finished,
replaces its entry in RESULTS/BENCHMARK[_quick].json (RESULTS: the script's --out), re-read
first so the entries other processes wrote are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROW_KEYS = ("episodes", "success_rate", "success_ci95", "grasp_rate", "mean_length",
            "conditional_stage_success")


def run_task(benchmark: str, ipi, quick: bool, results: Path) -> dict[str, Any]:
    """Run (or just collect) one task's IPI from ``ipi`` (an ``IPIArgs``); unless ``quick``, its
    report is kept in RESULTS/BENCHMARK/TASK. Returns the task's JSON entry."""
    from stare_robot.sim.ipi import run_ipi

    done = run_ipi(ipi)
    if not quick:
        keep_report(done, results / benchmark / ipi.task)
    command = " ".join([".venv/bin/python", f"benchmarks/{benchmark}.py", "--task", ipi.task,
                        *(["--quick"] if quick else []), "--out", str(results)])
    return summarize_run(done, command)


def summarize_run(done: dict[str, Any], command: str) -> dict[str, Any]:
    """The table-worthy part of ``run_ipi``'s return value and its run folder's state."""
    state = json.loads((done["root"] / "ipi_state.json").read_text())
    return {
        "command": command,
        "sizes": done["sizes"],
        "rows": {label: {k: r.get(k) for k in ROW_KEYS} for label, r in done["results"].items()},
        "timings_s": state.get("timings_s", {}),
        "sta_tpo_pairs": state["steps"].get("pairs", {}).get("pairs"),
        "load_average_end": os.getloadavg(),
    }


def keep_report(done: dict[str, Any], dest: Path) -> None:
    """Copy the run's own report (tables + plots) beside the benchmark's JSON."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "report.png"):
        shutil.copyfile(done["root"] / name, dest / name)


def run_tasks(benchmark: str, tasks: Sequence[str], make_ipi: Callable[[str], Any], quick: bool,
              header: dict[str, Any], results: Path) -> Path:
    """Run (or collect) each task's IPI and merge it into the benchmark's results file."""
    path = results / f"{benchmark}{'_quick' if quick else ''}.json"
    for task in tasks:
        result = run_task(benchmark, make_ipi(task), quick, results)
        merge_task(path, {"benchmark": benchmark, **header}, task, result)
        print(f"{task}: {success_cells(result)} -> {path}", flush=True)
    return path


def merge_task(path: Path, header: dict[str, Any], task: str, result: dict[str, Any]) -> None:
    """Write ``task``'s entry into ``path``, re-reading it first: another process may have written."""
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc = {**header, "tasks": {**doc.get("tasks", {}), task: result}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))


def success_cells(result: dict[str, Any]) -> str:
    """One line per task for the console: success (and grasp success where the task has one)."""
    cells = []
    for label, r in result["rows"].items():
        grasp = "" if r["grasp_rate"] is None else f" (grasp {100 * r['grasp_rate']:.0f} %)"
        cells.append(f"{label} {100 * r['success_rate']:.0f} %{grasp}")
    return ", ".join(cells)
