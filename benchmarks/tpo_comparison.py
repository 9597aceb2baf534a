"""SFT vs SFT->TPO vs SFT->STA-TPO on the same held-out seeds (the paper's Fig. 5 analogue).

    .venv/bin/python benchmarks/tpo_comparison.py \\
        --ckpt PushCube-v1=runs/sft_learning/PushCube-v1_stake/final
    .venv/bin/python benchmarks/tpo_comparison.py --ckpt PushCube-v1=... PullCube-v1=... --quick

Per task, starting from a trained SFT checkpoint (benchmarks/sft_learning.py makes them):

1. ``--rollouts`` sampled rollouts on seeds 20 000.. (training pairs) and ``--heldout-rollouts``
   on seeds 30 000.. (held-out pairs), with stages and likelihood records (sim/collect.py);
2. preference pairs (cap ``--cap`` per task, the paper's 50) from each set;
3. plain TPO and STA-TPO from the SFT checkpoint, same steps, seed, lr, beta (and lambda);
4. deterministic evaluation of SFT, TPO and STA-TPO on the same held-out seeds 10 000.. : success
   with 95 % interval and conditional stage success P(stage_k | stage_{k-1}), plus each run's
   preference accuracy on the held-out pairs before and after training.

Writes ``benchmarks/results/tpo_comparison[_quick].json`` (with the command) and, per task, a
markdown table and bar plot under ``benchmarks/results/tpo_comparison[_quick]/<task>/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TRAIN_SEED, HELDOUT_SEED = 20_000, 30_000


def find_ckpt(task: str) -> Path | None:
    for pattern in (f"runs/sft_learning/{task}*/final", f"runs/*{task}*/final"):
        found = sorted(ROOT.glob(pattern))
        if found:
            return found[0]
    return None


def run_task(task: str, ckpt: Path, args, work: Path) -> dict:
    from stare_robot.sim.collect import collect_rollouts
    from stare_robot.sim.evaluate import evaluate

    from stare_robot.policies import load_policy
    from stare_robot.train.preferences import KINDS, make_pairs_file
    from stare_robot.train.tpo import TPOArgs, run_tpo

    work.mkdir(parents=True, exist_ok=True)
    entry: dict = {"ckpt": str(ckpt), "timings_s": {}}
    t = time.perf_counter()
    sets = {}
    for name, seed, num in (
        ("train", TRAIN_SEED, args.rollouts),
        ("heldout", HELDOUT_SEED, args.heldout_rollouts),
    ):
        store = work / f"rollouts_{name}.zarr"
        if not store.exists():
            summary = collect_rollouts(ckpt, task, num, store, seed=seed, progress=False)
        else:
            summary = None
        pairs = make_pairs_file([store], work / f"pairs_{name}.json", cap=args.cap, seed=0)
        sets[name] = {
            "store": str(store),
            "seed_start": seed,
            "episodes": num,
            "rollout_success": (
                sum(summary["successes"]) / len(summary["successes"]) if summary else None
            ),
            "pairs": len(pairs),
            "pair_kinds": {k: sum(p.kind == k for p in pairs) for k in KINDS},
        }
    entry["preference_data"] = sets
    entry["timings_s"]["rollouts_and_pairs"] = time.perf_counter() - t

    results, prefs = {}, {}
    runs = {"SFT": ckpt}
    for label, stage_aware in (("SFT→TPO", False), ("SFT→STA-TPO", True)):
        t = time.perf_counter()
        out = work / ("sta_tpo" if stage_aware else "tpo")
        summary = run_tpo(
            TPOArgs(
                ckpt=ckpt,
                pairs=work / "pairs_train.json",
                out=out,
                eval_pairs=work / "pairs_heldout.json",
                stage_aware=stage_aware,
                steps=args.steps,
                pairs_per_step=args.pairs_per_step,
                lr=args.lr,
                beta=args.beta,
                lam=args.lam,
                seed=args.seed,
                save_every=10**9,
                quiet=True,
            )
        )
        entry["timings_s"][label] = time.perf_counter() - t
        prefs[label] = {
            "heldout_before": summary["eval_before"],
            "heldout_after": summary["eval_after"],
            "final_train_loss": summary["history"][-1]["loss"],
        }
        runs[label] = out / "final"
    for label, path in runs.items():
        t = time.perf_counter()
        summary, _ = evaluate(load_policy(path), task, args.episodes, progress=False)
        summary.pop("per_episode", None)
        results[label] = summary
        entry["timings_s"][f"eval {label}"] = time.perf_counter() - t
        print(
            f"[{task}] {label}: success {100 * summary['success_rate']:.1f}% over "
            f"{summary['episodes']} episodes",
            flush=True,
        )
    entry["eval"] = results
    entry["preference_accuracy"] = prefs
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", nargs="*", default=[], help="TASK=PATH of the SFT checkpoint")
    parser.add_argument("--tasks", nargs="*", default=["PushCube-v1"])
    parser.add_argument("--rollouts", type=int, default=40)
    parser.add_argument("--heldout-rollouts", type=int, default=20)
    parser.add_argument("--cap", type=int, default=50)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--pairs-per-step", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "tpo_comparison")
    parser.add_argument("--tag", default="", help="suffix of the results name (variants)")
    args = parser.parse_args()
    if args.quick:
        args.rollouts, args.heldout_rollouts, args.steps, args.episodes = 8, 6, 6, 10
    import torch

    from stare_robot.eval.report import write_report

    torch.set_num_threads(1)
    ckpts = dict(item.split("=", 1) for item in args.ckpt)
    tasks = list(dict.fromkeys(list(ckpts) + args.tasks)) if ckpts else args.tasks
    tag = "tpo_comparison" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    out = {
        "command": " ".join([".venv/bin/python", "benchmarks/tpo_comparison.py", *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "threads": 1},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "eval_seed_start": 10_000,
        "tasks": {},
        "skipped": {},
    }
    for task in tasks:
        ckpt = Path(ckpts[task]) if task in ckpts else find_ckpt(task)
        if ckpt is None or not ckpt.exists():
            out["skipped"][task] = "no SFT checkpoint (run benchmarks/sft_learning.py first)"
            print(f"[{task}] skipped: no SFT checkpoint", flush=True)
            continue
        work = args.work / ("quick" if args.quick else "full") / task
        if args.tag:  # a variant reuses the rollouts and pairs, trains into its own folders
            work = work / args.tag
            for name in ("rollouts_train.zarr", "rollouts_heldout.zarr"):
                shared = work.parent / name
                if shared.exists() and not (work / name).exists():
                    work.mkdir(parents=True, exist_ok=True)
                    (work / name).symlink_to(shared)
        entry = run_task(task, ckpt, args, work)
        out["tasks"][task] = entry
        write_report(
            entry["eval"],
            RESULTS / tag / task,
            title=f"{task}: SFT vs TPO vs STA-TPO ({args.episodes} held-out episodes)",
        )
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{tag}.json").write_text(json.dumps(out, indent=2))
    (RESULTS / f"{tag}.json").write_text(json.dumps(out, indent=2))
    print(f"-> {RESULTS / f'{tag}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
