"""The IPI report: one table and one figure for a whole Imitation -> Preference -> Interaction run.

``report.md``: success (95 % interval), grasp and conditional stage success P(stage k | stage
k-1) after each IPI step on the same held-out seeds; PPO vs STA-PPO learning-curve points;
timings; the configuration. ``report.png``: those success bars beside the learning curves
(deterministic evaluation success vs environment steps; the sampling policy's training success
dotted). ``results.json``: all of it, machine-readable.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from stare_robot.eval.report import markdown_table

CURVES = {"STA-PPO": "sta_ppo", "PPO": "ppo"}


def learning_curves(root: Path) -> dict[str, list[dict[str, Any]]]:
    """{method: history rows} of the PPO runs that exist under ``root``."""
    curves = {}
    for label, folder in CURVES.items():
        f = Path(root) / folder / "history.json"
        if f.exists():
            curves[label] = json.loads(f.read_text())
    return curves


def _curve_table(curves: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| method | iteration | env steps | eval success % | training success % |",
             "|---|---|---|---|---|"]
    for label, rows in curves.items():
        for r in rows:
            ev = f"{100 * r['eval_success']:.0f}" if "eval_success" in r else ""
            tr = f"{100 * r['train_success']:.0f}" if "train_success" in r else ""
            lines.append(f"| {label} | {r['iteration']} | {r['env_steps']} | {ev} | {tr} |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict], curves: dict[str, list[dict]], path: Path, title: str) -> Path:
    # matplotlib only here, where a figure is drawn, and with the file backend (no display)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    runs = list(results)
    if runs:
        stage_names = results[runs[0]]["stage_names"][1:]
        groups = ["success", *[f"{n}|prev" for n in stage_names]]
        x, width = np.arange(len(groups)), 0.8 / len(runs)
        for i, run in enumerate(runs):
            r = results[run]
            vals = [r["success_rate"]] + [row["rate"] or 0.0 for row in r["conditional_stage_success"]]
            left.bar(x + i * width - 0.4 + width / 2, [100 * v for v in vals], width, label=run)
        left.set_xticks(x, groups, rotation=15)
        left.set_ylim(0, 105)
        left.set_ylabel("% (held-out seeds)")
        left.legend(fontsize=8, loc="lower left")
        left.set_title("after each IPI step")
    for (label, rows), color in zip(curves.items(), ("tab:red", "tab:blue")):
        ev = [(r["env_steps"], 100 * r["eval_success"]) for r in rows if "eval_success" in r]
        tr = [(r["env_steps"], 100 * r["train_success"]) for r in rows if "train_success" in r]
        if ev:
            right.plot(*zip(*ev), "o-", color=color, label=f"{label} (deterministic eval)")
        if tr:
            right.plot(*zip(*tr), ":", color=color, alpha=0.7, label=f"{label} (training rollouts)")
    right.set_xlabel("environment steps")
    right.set_ylabel("success %")
    right.set_ylim(0, 105)
    right.set_title("PPO vs STA-PPO")
    if curves:
        right.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_ipi_report(run, results: dict[str, dict]) -> dict[str, Any]:
    """Write report.md / report.png / results.json under ``run.root``; returns their paths and
    the markdown results table (``table``)."""
    root = Path(run.root)
    curves = learning_curves(root)
    title = f"IPI on {run.args.task}"
    table = markdown_table(results) if results else "(no evaluated step yet)\n"
    config = {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(run.args).items()},
              "sizes": run.sizes}
    skipped = {k: v["skipped"] for k, v in run.state["steps"].items() if "skipped" in v}
    png = plot(results, curves, root / "report.png", title)
    episodes = next(iter(results.values()))["episodes"] if results else 0
    md = [
        f"# {title}\n",
        (f"Held-out evaluation: {episodes} episodes per row, seeds "
         f"10000..{10000 + episodes - 1}, deterministic policy.\n"),
        table,
        "",
        *(f"- step `{k}` skipped: {v}" for k, v in skipped.items()),
        "\n## Learning curves (PPO vs STA-PPO, same start and budget)\n",
        ("Deterministic evaluation on seeds 40000.. at intervals; training success is the "
         "sampling policy's on its own rollouts.\n"),
        _curve_table(curves) if curves else "(no PPO run yet)\n",
        "\n![report](report.png)\n",
        "## Timings (s)\n",
        "```json\n" + json.dumps(run.state.get("timings_s", {}), indent=1) + "\n```\n",
        "## Configuration\n",
        "```json\n" + json.dumps(config, indent=1) + "\n```\n",
    ]
    md_path = root / "report.md"
    md_path.write_text("\n".join(md))
    json_path = root / "results.json"
    json_path.write_text(json.dumps({"task": run.args.task, "results": results, "curves": curves,
                                     "config": config, "skipped": skipped,
                                     "timings_s": run.state.get("timings_s", {})}, indent=1))
    return {"md": md_path, "png": png, "json": json_path, "table": table}
