"""Write an evaluation summary as JSON, a markdown table and a bar plot."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def markdown_table(results: Mapping[str, dict]) -> str:
    """One row per evaluated run (e.g. per method or per task): success with its 95 % interval,
    grasp, mean length and the conditional success of every stage."""
    names = next(iter(results.values()))["stage_names"] if results else []
    same_stages = all(r["stage_names"] == names for r in results.values())
    stage_cols = [f"P({n}\\|prev)" for n in names[1:]] if same_stages else ["P(stage\\|prev)"]
    head = ["run", "episodes", "success %", "95% CI", "grasp %", "mean length", *stage_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, r in results.items():
        lo, hi = r["success_ci95"]
        if same_stages:
            stage_vals = [_pct(row["rate"]) for row in r["conditional_stage_success"]]
        else:
            stage_vals = [", ".join(f"{row['name']} {_pct(row['rate'])}"
                                    for row in r["conditional_stage_success"])]
        cells = [run, str(r["episodes"]), _pct(r["success_rate"]), f"{_pct(lo)}–{_pct(hi)}",
                 _pct(r["grasp_rate"]), f"{r['mean_length']:.1f}", *stage_vals]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_plot(results: Mapping[str, dict], path: Path, title: str = "") -> Path:
    """Success (with 95 % interval) and conditional stage success per run, side by side."""
    # lazy, with the file backend: matplotlib's start-up is paid only when a figure is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(results)
    stage_names = results[runs[0]]["stage_names"][1:] if runs else []
    groups = ["success", *[f"{n}|prev" for n in stage_names]]
    width = 0.8 / max(1, len(runs))
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(groups), 3.6))
    x = np.arange(len(groups))
    for i, run in enumerate(runs):
        r = results[run]
        vals = [r["success_rate"]] + [row["rate"] or 0.0 for row in r["conditional_stage_success"]]
        vals = (vals + [0.0] * len(groups))[: len(groups)]
        lo, hi = r["success_ci95"]
        xs = x + i * width - 0.4 + width / 2
        ax.bar(xs, [100 * v for v in vals], width, label=run)
        # the 95 % interval only on the success bar (stage rates are conditional counts)
        ax.errorbar(xs[0], 100 * r["success_rate"], fmt="none", ecolor="black", capsize=3,
                    # max(0, .): at 0 % / 100 % the Wilson bound can miss the rate by a rounding error
                    yerr=[[max(0.0, 100 * (r["success_rate"] - lo))],
                          [max(0.0, 100 * (hi - r["success_rate"]))]])
    ax.set_xticks(x, groups, rotation=20)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(results: Mapping[str, dict], out_dir: Path | str, title: str = "") -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and ``results.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "results.png"}
    paths["json"].write_text(json.dumps(results, indent=2))
    paths["md"].write_text((f"# {title}\n\n" if title else "") + markdown_table(results))
    bar_plot(results, paths["png"], title)
    return paths
