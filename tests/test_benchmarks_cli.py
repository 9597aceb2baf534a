"""Every benchmark script takes ``--out`` and, by default, writes outside ``benchmarks/results``.

The published tables in benchmarks/results/ are only ever rewritten on purpose
(``--out benchmarks/results``): a benchmark run as the README shows it on a fresh clone once
replaced the committed tpo_comparison.json with an empty table. Checked from each script's own
``--help`` (what a user sees), so a default changed in code is caught.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
PUBLISHED = BENCHMARKS / "results"
OWNED_ELSEWHERE = {"server_latency.py"}  # its --out is another change's (issue 19, serving part)


def scripts() -> list[Path]:
    """The runnable benchmarks (modules without a __main__ block, e.g. ipi_table.py, are shared code)."""
    return sorted(p for p in BENCHMARKS.glob("*.py")
                  if "__main__" in p.read_text() and p.name not in OWNED_ELSEWHERE)


def help_text(script: Path) -> str:
    env = {**os.environ, "COLUMNS": "400"}  # no wrapping: one option per line
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=False,
                          env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, f"{script.name} --help failed:\n{done.stderr[-2000:]}"
    return done.stdout


def out_default(text: str) -> str | None:
    """The default printed on the ``--out`` option's line of an argparse or tyro help."""
    for line in text.splitlines():
        if re.match(r"^[\s│]*--out[\s,]", line):
            found = re.findall(r"default: ([^\s,)]+)", line)
            return found[-1] if found else None
    return None


def points_into_published(default: str) -> bool:
    path = Path(default)
    path = (REPO / path if not path.is_absolute() else path).resolve()
    return path == PUBLISHED.resolve() or PUBLISHED.resolve() in path.parents


def test_out_default_parser_reads_argparse_and_tyro_lines():
    argparse_help = "options:\n  --out DIR   results folder (default: /r/runs/benchmarks, git-ignored)\n"
    tyro_help = "│ --out PATH   Results. (default: /r/benchmarks/results/x.json)      │\n"
    assert out_default(argparse_help) == "/r/runs/benchmarks"
    assert out_default(tyro_help) == "/r/benchmarks/results/x.json"
    assert out_default("  --outdir X (default: y)\n") is None
    assert points_into_published(str(PUBLISHED / "tpo_comparison.json"))
    assert points_into_published("benchmarks/results")
    assert not points_into_published("runs/benchmarks")


def test_there_are_benchmarks_to_check():
    names = {p.name for p in scripts()}
    assert {"tpo_comparison.py", "sft_learning.py", "maniskill_ipi.py"} <= names


@pytest.mark.parametrize("script", scripts(), ids=lambda p: p.name)
def test_benchmark_takes_out_and_defaults_outside_published_results(script):
    text = help_text(script)
    default = out_default(text)
    assert default is not None, f"{script.name}: no --out option with a printed default in --help"
    assert not points_into_published(default), (
        f"{script.name}: --out defaults to {default}, inside benchmarks/results/ "
        "(a plain run would overwrite the published results)")
