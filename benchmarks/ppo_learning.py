"""PPO vs STA-PPO learning curves from the same start checkpoint, same budget, several seeds.

    .venv/bin/python benchmarks/ppo_learning.py --start PushCube-v1=/tmp/sft80/final \\
        --iterations 10 --episodes-per-iter 16 --seeds 0 1 2
    .venv/bin/python benchmarks/ppo_learning.py --start PushCube-v1=sft:90 --iterations 4 \\
        --seeds 0 1 2 --tag curves                # builds its own weak start
    .venv/bin/python benchmarks/ppo_learning.py --start ... --quick     # 1 seed, 2 iterations
    .venv/bin/python benchmarks/ppo_learning.py --start ... --noise-std 0.1 --lr 1e-6  # overrides

A start ``TASK=sft:STEPS`` is made here, the same way the IPI run makes its SFT checkpoint:
``--start-demos`` expert demos (seeds 0..), stage annotation, STEPS SFT steps with seed 0, in
``--work``/starts/TASK_sftSTEPS (reused when there). A few SFT steps give a deliberately weak
policy, so the curves have room to rise.

For every (task, method, seed): ``stare-robot train ppo`` from the start checkpoint (plain PPO on
the sparse success reward vs STA-PPO with the stage potentials), deterministic evaluation every
``--eval-every`` iterations on ``--eval-episodes`` seeds from 40 000. Reports, per method, the
environment steps at which the evaluation success first reached 50 % and 80 % (None: not within
the budget), the mean over the seeds that reached it (``reached_50`` / ``reached_80`` say how
many did) and the STA-PPO / PPO ratio of those means, and the final success. Writes
OUT/ppo_learning[_TAG].json and .png (curves, mean over seeds with each seed
faint).
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
METHODS = {"PPO": False, "STA-PPO": True}
# PPOArgs fields that shape learning, recorded with the results (the runs use their defaults)
PPO_HYPERPARAMETERS = ("lr", "value_lr", "epochs", "minibatch", "clip", "target_kl", "gamma",
                       "gae_lambda", "noise_std", "noisy_steps", "value_warmup_iters", "reward")


def steps_to(rows: list[dict], level: float) -> int | None:
    for r in rows:
        if r.get("eval_success", -1.0) >= level:
            return int(r["env_steps"])
    return None


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def mean_curve(runs: list[dict]) -> list[tuple[float, float]]:
    """Per evaluation iteration present in every seed: (mean env steps, mean success %)."""
    by_iter: dict[int, list[tuple[int, float]]] = {}
    for seed_run in runs:
        for r in seed_run["history"]:
            if "eval_success" in r:
                by_iter.setdefault(r["iteration"], []).append((r["env_steps"], r["eval_success"]))
    return [(sum(s for s, _ in pts) / len(pts), 100 * sum(v for _, v in pts) / len(pts))
            for _, pts in sorted(by_iter.items()) if len(pts) == len(runs)]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for method, color in zip(METHODS, ("tab:blue", "tab:red")):
            for seed_run in results[task].get(method, {}).get("runs", []):
                pts = [(r["env_steps"], 100 * r["eval_success"]) for r in seed_run["history"]
                       if "eval_success" in r]
                if pts:
                    ax.plot(*zip(*pts), "o-", color=color, alpha=0.25, lw=1, ms=3)
            mean = mean_curve(results[task].get(method, {}).get("runs", []))
            if mean:
                ax.plot(*zip(*mean), "o-", color=color, lw=2.5,
                        label=f"{method} (mean of {len(results[task][method]['runs'])} seeds)")
        ax.set_title(task)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("eval success % (seeds 40000..)")
        ax.set_ylim(0, 105)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def make_start(task: str, start: str, args) -> Path:
    """``CHECKPOINT`` as given, or ``sft:STEPS``: demos -> stages -> SFT, as the IPI run does."""
    if not start.startswith("sft:"):
        return Path(start)
    from stare_robot.sim.ipi import IPIArgs, Run, step_demos, step_sft, step_stages

    steps = int(start[len("sft:"):])
    ipi = IPIArgs(task=task, demos=args.start_demos, sft_steps=steps, quiet=True)
    run = Run(ipi, args.work / "starts" / f"{task}_sft{steps}", ipi.resolved())
    final = run.path("sft") / "final"
    if not final.is_dir():
        run.root.mkdir(parents=True, exist_ok=True)
        run.load()
        step_demos(run)
        step_stages(run)
        step_sft(run)
    return final


def main() -> int:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_out_option(parser)
    parser.add_argument("--start", nargs="+", required=True, help="TASK=CHECKPOINT ...")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--episodes-per-iter", type=int, default=16)
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "ppo_learning")
    parser.add_argument("--tag", default="")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
                        help="a subset, to run methods in parallel processes on one --work "
                             "(a later run with both reuses the finished ones)")
    parser.add_argument("--start-demos", type=int, default=100,
                        help="expert demos behind a TASK=sft:STEPS start")
    parser.add_argument("--lr", type=float, help="policy learning rate (default: PPO's)")
    parser.add_argument("--noise-std", type=float,
                        help="sigma of the flow head's noisy sampler (default: PPO's)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.seeds, args.episodes_per_iter, args.eval_every = 2, [0], 4, 1
        args.eval_episodes = 4

    from stare_robot.sim.ppo import PPOArgs, run_ppo

    # hyperparameters given here override PPO's defaults; what the runs used is recorded below
    overrides = {k: v for k, v in (("lr", args.lr), ("noise_std", args.noise_std)) if v is not None}
    starts = {task: make_start(task, ckpt, args) for task, ckpt in
              (s.split("=", 1) for s in args.start)}
    results: dict = {}
    t0 = time.time()
    load0 = os.getloadavg()
    for task, ckpt in starts.items():
        results[task] = {}
        for method, stage_aware in METHODS.items():
            if method not in args.methods:
                continue
            runs = []
            for seed in args.seeds:
                out = args.work / (args.tag or "default") / task / f"{method}_seed{seed}"
                summary = run_ppo(PPOArgs(
                    ckpt=Path(ckpt), task=task, out=out, stage_aware=stage_aware,
                    iterations=args.iterations, episodes_per_iter=args.episodes_per_iter,
                    eval_every=args.eval_every, eval_episodes=args.eval_episodes, seed=seed,
                    num_envs=args.num_envs, resume=True, quiet=True, **overrides,
                ))
                hist = summary["history"]
                runs.append({"seed": seed, "history": hist, "steps_to_50": steps_to(hist, 0.5),
                             "steps_to_80": steps_to(hist, 0.8),
                             "final_eval_success": hist[-1].get("eval_success")})
                print(f"{task} {method} seed {seed}: final eval "
                      f"{runs[-1]['final_eval_success']}, to50 {runs[-1]['steps_to_50']}, "
                      f"to80 {runs[-1]['steps_to_80']}", flush=True)
            results[task][method] = {
                "runs": runs,
                "mean_steps_to_50": _mean([r["steps_to_50"] for r in runs]),
                "mean_steps_to_80": _mean([r["steps_to_80"] for r in runs]),
                "reached_50": sum(r["steps_to_50"] is not None for r in runs),
                "reached_80": sum(r["steps_to_80"] is not None for r in runs),
                "mean_final_eval_success": _mean([r["final_eval_success"] for r in runs]),
            }
        if len(results[task]) < len(METHODS):
            continue
        a, b = results[task]["STA-PPO"], results[task]["PPO"]
        results[task]["ratio_sta_over_ppo"] = {
            level: (a[f"mean_steps_to_{level}"] / b[f"mean_steps_to_{level}"])
            if a[f"mean_steps_to_{level}"] and b[f"mean_steps_to_{level}"] else None
            for level in ("50", "80")
        }
    name = "ppo_learning" + (f"_{args.tag}" if args.tag else "") + ("_quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "ppo_learning",
        "note": "mean_steps_to_50/80 average only the seeds that reached the level (reached_50/80)",
        "command": " ".join([".venv/bin/python", "benchmarks/ppo_learning.py", *sys.argv[1:]]),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "ppo_hyperparameters": {
            k: v for k, v in vars(PPOArgs(ckpt=Path("."), task="", out=Path("."), **overrides)).items()
            if k in PPO_HYPERPARAMETERS},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg_start": load0, "loadavg_end": os.getloadavg()},
        "seconds": round(time.time() - t0, 1),
        "results": results,
    }
    (args.out / f"{name}.json").write_text(json.dumps(doc, indent=1))
    plot(results, args.out / f"{name}.png")
    print(f"wrote {args.out / name}.json/.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
