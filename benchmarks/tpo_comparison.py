"""SFT vs SFT->TPO vs SFT->STA-TPO on the same held-out seeds (the paper's Fig. 5 analogue).

    nice -n 5 .venv/bin/python benchmarks/tpo_comparison.py            # the four paper tasks
    .venv/bin/python benchmarks/tpo_comparison.py --tasks PushCube-v1 --quick
    .venv/bin/python benchmarks/tpo_comparison.py --ckpt PushCube-v1=runs/my_sft/final

Per task, starting from a trained SFT checkpoint (benchmarks/sft_learning.py makes them; the
defaults are :data:`DEFAULT_CKPTS`):

1. sampled rollouts on seeds 20 000.. (training pairs) and on seeds 30 000.. (held-out pairs),
   with stages and likelihood records (sim/collect.py), :data:`DEFAULT_ROLLOUTS` per task unless
   ``--rollouts`` / ``--heldout-rollouts`` say otherwise; when one outcome is rare, collection
   goes on until ``--min-per-outcome`` successes and failures (or ``--max-rollouts``);
2. preference pairs (cap ``--cap`` per task, the paper's 50) from each set;
3. plain TPO and STA-TPO from the SFT checkpoint, same steps, seed, lr, beta (and lambda), with
   the trainer's defaults otherwise (checkpoint selection on the held-out pairs, success anchor);
4. deterministic evaluation of SFT, TPO and STA-TPO on the same held-out seeds 10 000.. : success
   with 95 % interval, conditional stage success P(stage_k | stage_{k-1}), the seeds on which a
   method and SFT disagree, plus each run's preference accuracy on the held-out pairs.

Every stage is cached in the work folder (rollout stores with a summary JSON, one JSON per
evaluation), so an interrupted run resumes, and ``--tag`` variants reuse rollouts and the SFT
evaluation. Tasks can be run one at a time (``--tasks StackCube-v1``): each run replaces its own
tasks in the results JSON and keeps the others (each task records its command), so the four-task
table builds up. Writes ``OUT/tpo_comparison[_quick][_tag].json`` (with the
command and load average), per task a markdown table and bar plot under
``OUT/tpo_comparison[...]/<task>/`` and a four-task table ``summary.md`` + plot.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

from stare_robot.sim.collect import DEFAULT_COLLECT_SEED as TRAIN_SEED
from stare_robot.sim.collect import HELDOUT_COLLECT_SEED as HELDOUT_SEED
from stare_robot.sim.evaluate import EVAL_SEED_START as EVAL_SEED

ROOT = Path(__file__).resolve().parents[1]
PAPER_TASKS = ("StackCube-v1", "PushCube-v1", "PullCube-v1", "LiftPegUpright-v1")
# The SFT checkpoints the default CPU budget produces (benchmarks/results/sft_learning*.json).
DEFAULT_CKPTS = {
    "StackCube-v1": "runs/sft_learning_stackcube_2000/StackCube-v1_sft/final",
    "PushCube-v1": "runs/sft_learning/PushCube-v1_sft/final",
    "PullCube-v1": "runs/sft_learning/PullCube-v1_sft/final",
    "LiftPegUpright-v1": "runs/sft_learning_stack_liftpeg/LiftPegUpright-v1_sft/final",
}
# Rollouts per task (train, held-out, min per outcome; default 40, 20, 8): a long-horizon
# StackCube / LiftPegUpright rollout costs ~10x a PushCube one, so those get fewer and no extension.
DEFAULT_ROLLOUTS = {"StackCube-v1": (24, 12, 0), "LiftPegUpright-v1": (24, 12, 0)}
# Evaluation episodes per method (default 100): long-horizon tasks get 50 on the CPU budget, and
# PushCube too (its SFT policy already succeeds on ~all seeds, so there is little to resolve).
DEFAULT_EPISODES = {"StackCube-v1": 50, "LiftPegUpright-v1": 50, "PushCube-v1": 50}
METHODS = {"SFT→TPO": False, "SFT→STA-TPO": True}  # label -> stage_aware


def find_ckpt(task: str) -> Path | None:
    if task in DEFAULT_CKPTS and (ROOT / DEFAULT_CKPTS[task]).exists():
        return ROOT / DEFAULT_CKPTS[task]
    for pattern in (f"runs/sft_learning/{task}*/final", f"runs/*{task}*/final"):
        found = sorted(ROOT.glob(pattern))
        if found:
            return found[0]
    return None


def _slug(label: str) -> str:
    return label.replace("SFT→", "").replace("-", "_").lower()


def stored_outcomes(store: Path) -> tuple[list[int], list[bool]]:
    """(seeds, successes) of the episodes already in a rollout store, by seed."""
    from stare_robot import keys
    from stare_robot.data.store import EpisodeStore

    attrs = [ep.attrs for ep in EpisodeStore.open(store)]
    rows = sorted((int(a[keys.ATTR_SEED]), bool(a[keys.ATTR_SUCCESS])) for a in attrs)
    return [r[0] for r in rows], [r[1] for r in rows]


def collect_set(
    task: str, ckpt: Path, work: Path, name: str, seed: int, num: int, min_each: int, args
) -> dict:
    """Rollout store ``rollouts_<name>.zarr`` + its summary; reused when complete, continued
    from the next seed when interrupted (every stored episode is complete)."""
    from stare_robot.sim.collect import collect_rollouts

    store, done = work / f"rollouts_{name}.zarr", work / f"rollouts_{name}.json"
    if done.is_file():
        return json.loads(done.read_text())
    seeds, successes = stored_outcomes(store) if store.exists() else ([], [])
    first = seeds[-1] + 1 if seeds else seed
    scale = 1 if name == "train" else 2  # the held-out set is half the size
    if len(seeds) < num:
        summary = collect_rollouts(
            ckpt,
            task,
            num - len(seeds),
            store,
            seed=first,
            min_per_outcome=min_each // scale,
            max_num=max(num, args.max_rollouts // scale) - len(seeds),
            progress=not args.no_progress,
        )
        seeds, successes = seeds + summary["seeds"], successes + summary["successes"]
    n, ok = len(seeds), sum(successes)
    info = {
        "store": str(store),
        "seed_start": seed,
        "episodes": n,
        "successes": ok,
        "rollout_success": ok / n if n else None,
        "seeds": seeds,
    }
    done.write_text(json.dumps(info, indent=1))
    return info


def evaluate_cached(label: str, ckpt: Path, task: str, episodes: int, work: Path) -> dict:
    """Evaluation summary (with per-episode outcomes) of ``ckpt``; cached per label."""
    from stare_robot.sim.evaluate import evaluate

    from stare_robot.policies import load_policy

    cache = work / f"eval_{_slug(label)}.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("ckpt") == str(ckpt) and cached["episodes"] == episodes:
            return cached
    t = time.perf_counter()
    summary, _ = evaluate(load_policy(ckpt), task, episodes, seed=EVAL_SEED, progress=False)
    summary.update(ckpt=str(ckpt), wall_s=round(time.perf_counter() - t, 1))
    cache.write_text(json.dumps(summary, indent=1))
    return summary


def train_cached(
    label: str, stage_aware: bool, ckpt: Path, work: Path, args, held_out: bool
) -> tuple[dict, Path]:
    """TPO / STA-TPO run into ``work/<method>``; a finished run (preference_eval.json written
    last) is read back instead of re-run, an interrupted one resumes from its checkpoint."""
    from stare_robot.train.tpo import TPOArgs, run_tpo

    out = work / _slug(label)
    done = out / "preference_eval.json"
    keys = ("eval_before", "eval_after", "selected_step", "kept_reference", "selection")
    if not done.is_file():
        t = time.perf_counter()
        run_tpo(
            TPOArgs(
                ckpt=ckpt,
                pairs=work / "pairs_train.json",
                out=out,
                eval_pairs=(work / "pairs_heldout.json") if held_out else None,
                stage_aware=stage_aware,
                steps=args.steps,
                pairs_per_step=args.pairs_per_step,
                lr=args.lr,
                beta=args.beta,
                lam=args.lam,
                seed=args.seed,
                save_every=10**9,
                resume=True,
                quiet=True,
                **({} if args.anchor is None else {"anchor": args.anchor}),
                **({} if args.select_every is None else {"select_every": args.select_every}),
            )
        )
        (out / "wall_s.txt").write_text(f"{time.perf_counter() - t:.1f}")
    evaluation = json.loads(done.read_text())
    history = (
        json.loads((out / "history.json").read_text()) if (out / "history.json").is_file() else []
    )
    wall = out / "wall_s.txt"
    summary = {k: evaluation.get(k) for k in keys}
    summary["final_train_loss"] = history[-1]["loss"] if history else None
    summary["wall_s"] = float(wall.read_text()) if wall.is_file() else None
    return summary, out / "final"


def disagreements(a: dict, b: dict) -> dict:
    """Seeds where exactly one of two evaluations (same seeds) succeeded, with the two-sided
    exact sign-test (McNemar) p-value of that split."""
    sa = [e["success"] for e in a["per_episode"]]
    sb = [e["success"] for e in b["per_episode"]]
    only_b = sum(y and not x for x, y in zip(sa, sb))
    only_a = sum(x and not y for x, y in zip(sa, sb))
    n = only_a + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n if n else 0.5
    return {"only_method": only_b, "only_sft": only_a, "sign_test_p": min(1.0, 2 * tail)}


def run_task(task: str, ckpt: Path, args, work: Path, episodes: int) -> dict:
    from stare_robot.train.preferences import KINDS, PreferenceError, make_pairs_file

    work.mkdir(parents=True, exist_ok=True)
    data_dir = work.parent if args.tag else work  # variants share rollouts and the SFT eval
    entry: dict = {"ckpt": str(ckpt), "timings_s": {}}
    t = time.perf_counter()
    sets = {}
    train_num, heldout_num, min_each = DEFAULT_ROLLOUTS.get(task, (40, 20, 8))
    train_num = args.rollouts or train_num
    heldout_num = args.heldout_rollouts or heldout_num
    min_each = min_each if args.min_per_outcome is None else args.min_per_outcome
    for name, seed, num in (
        ("train", TRAIN_SEED, train_num),
        ("heldout", HELDOUT_SEED, heldout_num),
    ):
        info = collect_set(task, ckpt, data_dir, name, seed, num, min_each, args)
        try:
            pairs = make_pairs_file(
                [info["store"]], work / f"pairs_{name}.json", cap=args.cap, seed=0
            )
        except PreferenceError as err:
            pairs, info = [], {**info, "pairs_error": str(err)}
        info = {k: v for k, v in info.items() if k != "seeds"}
        sets[name] = {
            **info,
            "pairs": len(pairs),
            "pair_kinds": {k: sum(p.kind == k for p in pairs) for k in KINDS},
            "distinct_episodes_in_pairs": len(
                {(p.chosen.episode) for p in pairs} | {p.rejected.episode for p in pairs}
            ),
        }
    entry["preference_data"] = sets
    entry["timings_s"]["rollouts_and_pairs"] = round(time.perf_counter() - t, 1)

    results = {"SFT": evaluate_cached("SFT", ckpt, task, episodes, data_dir)}
    entry["timings_s"]["eval SFT"] = results["SFT"]["wall_s"]
    prefs = {}
    for label, stage_aware in METHODS.items():
        if sets["train"]["pairs"] == 0:
            prefs[label] = {"skipped": "no training pairs: the SFT weights are kept"}
            path = ckpt
        else:
            prefs[label], path = train_cached(
                label, stage_aware, ckpt, work, args, held_out=sets["heldout"]["pairs"] > 0
            )
            entry["timings_s"][label] = prefs[label].pop("wall_s")
        results[label] = evaluate_cached(label, path, task, episodes, work)
        entry["timings_s"][f"eval {label}"] = results[label]["wall_s"]
    for label, r in results.items():
        print(
            f"[{task}] {label}: success {100 * r['success_rate']:.1f}% over "
            f"{r['episodes']} episodes",
            flush=True,
        )
    entry["paired_vs_sft"] = {m: disagreements(results["SFT"], results[m]) for m in METHODS}
    entry["eval"] = {
        k: {n: v for n, v in r.items() if n != "per_episode"} for k, r in results.items()
    }
    entry["preference_accuracy"] = prefs
    return entry


def summary_table(tasks: dict) -> str:
    """Four-task markdown table: success % (95 % CI) per method, and the target check."""
    labels = ["SFT", *METHODS]
    lines = [
        "| task | episodes | " + " | ".join(f"{m} success % (95% CI)" for m in labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for task, e in tasks.items():
        cells = []
        for m in labels:
            r = e["eval"][m]
            lo, hi = r["success_ci95"]
            cells.append(f"{100 * r['success_rate']:.0f} ({100 * lo:.0f}–{100 * hi:.0f})")
        lines.append(f"| {task} | {e['eval']['SFT']['episodes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def target_met(tasks: dict) -> dict:
    """The issue's target: STA-TPO >= TPO >= SFT success on at least two tasks."""
    ok = [
        t
        for t, e in tasks.items()
        if e["eval"]["SFT→STA-TPO"]["success_rate"]
        >= e["eval"]["SFT→TPO"]["success_rate"]
        >= e["eval"]["SFT"]["success_rate"]
    ]
    return {"tasks_meeting": ok, "met": len(ok) >= 2}


def overview_plot(tasks: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = ["SFT", *METHODS]
    names = list(tasks)
    x, width = np.arange(len(names)), 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(1.5 + 2.0 * len(names), 3.6))
    for i, m in enumerate(labels):
        rates = [100 * tasks[t]["eval"][m]["success_rate"] for t in names]
        lo = [100 * tasks[t]["eval"][m]["success_ci95"][0] for t in names]
        hi = [100 * tasks[t]["eval"][m]["success_ci95"][1] for t in names]
        xs = x + i * width - 0.4 + width / 2
        ax.bar(xs, rates, width, label=m)
        ax.errorbar(
            xs,
            rates,
            fmt="none",
            ecolor="black",
            capsize=3,
            yerr=[np.maximum(0, np.subtract(rates, lo)), np.maximum(0, np.subtract(hi, rates))],
        )
    ax.set_xticks(x, [n.removesuffix("-v1") for n in names])
    ax.set_ylabel("success % (95% CI)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    ax.set_title("SFT vs TPO vs STA-TPO, held-out seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_out_option(parser)
    parser.add_argument("--ckpt", nargs="*", default=[], help="TASK=PATH of the SFT checkpoint")
    parser.add_argument("--tasks", nargs="*", default=list(PAPER_TASKS))
    parser.add_argument("--rollouts", type=int, default=None, help="default: DEFAULT_ROLLOUTS")
    parser.add_argument("--heldout-rollouts", type=int, default=None)
    parser.add_argument("--min-per-outcome", type=int, default=None)
    parser.add_argument("--max-rollouts", type=int, default=80)
    parser.add_argument("--cap", type=int, default=50)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--pairs-per-step", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--anchor", type=float, default=None, help="TPOArgs.anchor (default: its)")
    parser.add_argument(
        "--select-every", type=int, default=None, help="TPOArgs.select_every (default: its)"
    )
    parser.add_argument(
        "--episodes", type=int, default=None, help="eval episodes (default 100; 50 Stack/Lift)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "tpo_comparison")
    parser.add_argument("--tag", default="", help="suffix of the results name (variants)")
    parser.add_argument(
        "--fresh", action="store_true", help="drop other tasks' results from an earlier run"
    )
    args = parser.parse_args()
    if args.quick:
        args.rollouts, args.heldout_rollouts, args.steps, args.episodes = 8, 6, 6, 10
        args.min_per_outcome = args.max_rollouts = 0
    import torch

    from stare_robot.eval.report import write_report

    torch.set_num_threads(1)
    ckpts = dict(item.split("=", 1) for item in args.ckpt)
    tasks = list(dict.fromkeys(list(ckpts) + args.tasks)) if ckpts else args.tasks
    tag = "tpo_comparison" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    out = {
        "command": " ".join([".venv/bin/python", "benchmarks/tpo_comparison.py", *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": 1,
            "load_avg_start": list(os.getloadavg()),
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "seeds": {"eval_start": EVAL_SEED, "train_rollouts": TRAIN_SEED, "heldout": HELDOUT_SEED},
        "tasks": {},
        "skipped": {},
    }
    results_dir = args.out / tag
    previous = args.out / f"{tag}.json"
    if previous.is_file() and not args.fresh:  # tasks run one at a time add up to one table
        kept = json.loads(previous.read_text()).get("tasks", {})
        out["tasks"] = {t: e for t, e in kept.items() if t not in tasks}
    for task in tasks:
        ckpt = Path(ckpts[task]) if task in ckpts else find_ckpt(task)
        if ckpt is None or not ckpt.exists():
            out["skipped"][task] = "no SFT checkpoint (run benchmarks/sft_learning.py first)"
            print(f"[{task}] skipped: no SFT checkpoint", flush=True)
            continue
        episodes = args.episodes or DEFAULT_EPISODES.get(task, 100)
        work = args.work / ("quick" if args.quick else "full") / task
        if args.tag:
            work = work / args.tag
        t = time.perf_counter()
        entry = run_task(task, ckpt, args, work, episodes)
        entry["wall_s"] = round(time.perf_counter() - t, 1)
        entry["command"] = out["command"]
        entry["load_avg"] = {"start": out["machine"]["load_avg_start"], "end": os.getloadavg()}
        out["tasks"][task] = entry
        write_report(
            entry["eval"],
            results_dir / task,
            title=f"{task}: SFT vs TPO vs STA-TPO ({episodes} held-out episodes)",
        )
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{tag}.json").write_text(json.dumps(out, indent=2))
    if out["tasks"]:
        out["target"] = target_met(out["tasks"])
        (results_dir / "summary.md").write_text(summary_table(out["tasks"]))
        overview_plot(out["tasks"], results_dir / "summary.png")
    out["machine"]["load_avg_end"] = list(os.getloadavg())
    (args.out / f"{tag}.json").write_text(json.dumps(out, indent=2))
    print(f"-> {args.out / f'{tag}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
