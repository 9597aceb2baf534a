"""Learning, not just running: default SFT on motion-planner demos, evaluated on held-out seeds.

    .venv/bin/python benchmarks/sft_learning.py                     # PushCube-v1, the check
    .venv/bin/python benchmarks/sft_learning.py --tasks PullCube-v1 PickCube-v1
    .venv/bin/python benchmarks/sft_learning.py --ablation --tasks PushCube-v1 PullCube-v1
    .venv/bin/python benchmarks/sft_learning.py --quick             # small smoke run

Per task: generates ``--demos`` state-mode demos (seeds 0 upward) into ``data/`` if missing,
trains the default SFT policy (``stare-robot train sft`` defaults), evaluates the untrained
(same architecture, random init, same data statistics) and the trained policy on ``--episodes``
held-out seeds (10 000 upward) with the horizon rule of ``stare_robot.sim.evaluate``
(twice the longest demo), and writes ``OUT/sft_learning[_<tag>].json`` plus
the evaluation report (markdown + bar plot) under ``OUT/sft_learning[_<tag>]/``.
``--ablation`` trains SFT without and with the StaKe heads at the same budget instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ensure_demos(task: str, num: int, data_dir: Path) -> Path:
    from stare_robot.sim.demos import generate_demos

    from stare_robot.data.store import EpisodeStore

    path = data_dir / f"{task}_state_{num}.zarr"
    if path.exists() and len(EpisodeStore.open(path).episode_ids()) >= num:
        return path
    if path.exists():
        raise SystemExit(f"{path} exists with fewer than {num} episodes; delete it and rerun")
    summary = generate_demos(task, num, 0, path, obs_mode="state")
    print(f"[demos] {task}: kept {summary['kept']}/{summary['attempted']} in "
          f"{summary['seconds']:.0f} s", flush=True)
    return path


def untrained_policy(run_dir: Path):
    """A freshly initialised policy with the trained run's exact config and data statistics."""
    import torch

    from stare_robot.policies import get_config_class, load_policy, make_policy
    from stare_robot.policies.normalize import NormalizationStats

    trained = load_policy(run_dir / "final")
    config = get_config_class(trained.config.type).from_dict(trained.config.to_dict())
    torch.manual_seed(12345)
    return make_policy(config, NormalizationStats.load(run_dir / "final")).eval()


def train(task: str, data: Path, out: Path, steps: int | None, stake: bool, seed: int) -> dict:
    from stare_robot.train.sft import SFTArgs, run_sft

    kw = {"steps": steps} if steps else {}
    args = SFTArgs(data=data, out=out, stake=stake, seed=seed, quiet=True, **kw)
    start = time.perf_counter()
    summary = run_sft(args)
    seconds = time.perf_counter() - start
    hist = summary["history"]
    print(f"[train] {task} stake={stake}: {args.steps} steps in {seconds:.0f} s, "
          f"loss {hist[0]['loss']:.3f} -> {hist[-1]['loss']:.3f}", flush=True)
    return {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
            "policy": args.policy, "chunk_size": args.chunk_size, "stake": stake,
            "threads": args.threads, "wall_s": round(seconds, 1), "windows": summary["windows"],
            "loss_first": hist[0]["loss"], "loss_last": hist[-1]["loss"],
            "loss_curve": [h["loss"] for h in hist[:: max(1, len(hist) // 50)]]}


def demo_lengths(data: Path) -> dict:
    """Expert demo lengths and the evaluation horizon they imply (sim.evaluate.max_steps_for)."""
    from stare_robot.sim.evaluate import max_steps_for

    from stare_robot.data.store import EpisodeStore

    lengths = [len(ep) for ep in EpisodeStore.open(data)]
    return {"min": min(lengths), "mean": round(sum(lengths) / len(lengths), 2),
            "max": max(lengths), "eval_max_steps": max_steps_for(lengths)}


def run_eval(policy, task: str, episodes: int, max_steps: int) -> dict:
    from stare_robot.sim.evaluate import evaluate

    start = time.perf_counter()
    summary, _ = evaluate(policy, task, episodes, max_steps=max_steps, progress=False)
    summary["wall_s"] = round(time.perf_counter() - start, 1)
    print(f"[eval] {task}: success {100 * summary['success_rate']:.1f}% "
          f"(CI {100 * summary['success_ci95'][0]:.0f}-{100 * summary['success_ci95'][1]:.0f}) "
          f"in {summary['wall_s']:.0f} s", flush=True)
    return summary


def main() -> int:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_out_option(parser)
    parser.add_argument("--tasks", nargs="+", default=["PushCube-v1"])
    parser.add_argument("--demos", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=None, help="default: the SFT default")
    parser.add_argument("--ablation", action="store_true", help="SFT vs SFT+StaKe at one budget")
    parser.add_argument("--no-untrained", action="store_true", help="skip the untrained baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10 demos, 50 steps, 5 episodes")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "sft_learning")
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    args = parser.parse_args()
    if args.quick:
        args.demos, args.episodes, args.steps = 10, 5, args.steps or 50

    import torch

    from stare_robot.eval.report import write_report
    from stare_robot.policies import load_policy

    torch.set_num_threads(1)
    name = "sft_learning" + (f"_{args.tag}" if args.tag else "") + ("_quick" if args.quick else "")
    report: dict = {}
    results: dict = {
        "command": " ".join([".venv/bin/python", "benchmarks/sft_learning.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_start": os.getloadavg()},
        "demos": args.demos, "episodes": args.episodes, "tasks": {},
    }
    for task in args.tasks:
        data = ensure_demos(task, args.demos, args.data_dir)
        entry: dict = {"data": str(data), "demo_lengths": demo_lengths(data)}
        horizon = entry["demo_lengths"]["eval_max_steps"]
        variants = [("sft", False), ("sft+stake", True)] if args.ablation else [("sft", None)]
        for label, stake in variants:
            from stare_robot.train.sft import SFTArgs

            use_stake = SFTArgs.stake if stake is None else stake
            out = args.runs_dir / f"{task}_{label}{'_quick' if args.quick else ''}"
            entry[label] = {"train": train(task, data, out, args.steps, use_stake, args.seed)}
            trained = load_policy(out / "final")
            entry[label]["eval"] = run_eval(trained, task, args.episodes, horizon)
            report[f"{task} {label}"] = entry[label]["eval"]
            if not args.no_untrained and not args.ablation:
                entry["untrained"] = {"eval": run_eval(untrained_policy(out), task, args.episodes,
                                                    horizon)}
                report[f"{task} untrained"] = entry["untrained"]["eval"]
        results["tasks"][task] = entry
        results["machine"]["load_avg_end"] = os.getloadavg()
        args.out.mkdir(parents=True, exist_ok=True)
        slim = json.loads(json.dumps(results))
        for e in slim["tasks"].values():  # per-episode lists live in the report folder
            for v in e.values():
                if isinstance(v, dict) and "eval" in v:
                    v["eval"].pop("per_episode", None)
        (args.out / f"{name}.json").write_text(json.dumps(slim, indent=2))
        write_report(report, args.out / name, title="SFT on 100 motion-planner demos (state mode)")
    print(f"wrote {args.out / (name + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
