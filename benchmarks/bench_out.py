"""Where a benchmark writes its results: ``--out DIR`` (shared by every script in benchmarks/).

The default is ``runs/benchmarks`` (git-ignored), so running a benchmark never overwrites the
published tables in ``benchmarks/results/``: publishing a new measurement is an explicit
``--out benchmarks/results``. Each script keeps its own file names inside that folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "runs" / "benchmarks"
PUBLISHED = ROOT / "benchmarks" / "results"
OUT_HELP = ("results folder (default: %(default)s, git-ignored); the committed tables are "
            "written with --out benchmarks/results")


def add_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help=OUT_HELP)
