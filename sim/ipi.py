"""IPI, the main job: Imitation -> Preference -> Interaction for one task, end to end.

    stare-robot ipi --task PushCube-v1                     # runs/PushCube-v1, default budget
    stare-robot ipi --task StackCube-v1 --budget long --out runs/stack

Steps (each writes into ``--out`` and is skipped when already finished; an interrupted step
resumes: demos and rollouts continue from the next seed, training from its last checkpoint; a
folder made with another task, observation mode, policy, seed or size is refused):

 1. ``demos``      expert demonstrations (ManiSkill3 motion planner) -> demos.zarr
 2. ``stages``     STARE stage annotation and gripper keyframes of every demo (+ stages.png)
 3. ``sft``        imitation: supervised fine-tuning with StaKe's heads -> sft/final
 4. ``rollouts``   sampled rollouts of the SFT policy (seeds 20 000..) -> rollouts.zarr, and
                   held-out ones (seeds 30 000..) -> rollouts_heldout.zarr
 5. ``pairs``      stage-aware preference pairs from each -> pairs.json, pairs_heldout.json
 6. ``sta_tpo``    preference: STA-TPO from the SFT checkpoint -> sta_tpo/final; with held-out
                   pairs, final/ is the checkpoint (or the SFT weights) that ranks them best
 7. ``sta_ppo``    interaction: STA-PPO from the STA-TPO checkpoint -> sta_ppo/final
 8. ``ppo``        (``--compare-ppo``) plain PPO from the same start and budget, for the curves
 9. ``eval_*``     deterministic evaluation after every step on the same held-out seeds 10 000..
10. ``report``     report.md + report.png + results.json: success and conditional stage success
                   after each IPI step, PPO vs STA-PPO learning curves, the configuration

When the rollouts yield no preference pair (e.g. every rollout succeeded and no two differ in
stage costs), STA-TPO has nothing to learn from: the step is recorded as skipped and STA-PPO
starts from the SFT checkpoint. Budgets are presets of the numbers below (``--budget``), each
overridable by its own flag.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import tyro
from stare_robot.sim.collect import DEFAULT_COLLECT_SEED, HELDOUT_COLLECT_SEED, collect_rollouts
from stare_robot.sim.demos import generate_demos
from stare_robot.sim.evaluate import EvalInputError, evaluate
from stare_robot.sim.ppo import run_ppo
from stare_robot.sim.tasks import UnknownTaskError, get_task

from stare_robot import keys
from stare_robot.data.store import EpisodeStore, StoreError
from stare_robot.eval.report import write_report
from stare_robot.policies import load_policy
from stare_robot.stages.cli import main as stages_main
from stare_robot.train.ipi_report import write_ipi_report
from stare_robot.train.loop import atomic_write_text
from stare_robot.train.ppo import PPOArgs, PPOInputError
from stare_robot.train.preferences import PreferenceError, make_pairs_file
from stare_robot.train.sft import SFTArgs, run_sft
from stare_robot.train.tpo import DEFAULT_SELECT_EVERY, TPOArgs, run_tpo

# budget preset -> settings; "default" fits PushCube-v1 on 2 CPU cores in well under 45 minutes
BUDGETS: dict[str, dict[str, Any]] = {
    "default": {"demos": 100, "sft_steps": 2000, "rollouts": 40, "heldout_rollouts": 20,
                "tpo_steps": 60, "ppo_iterations": 8, "ppo_episodes": 16, "eval_episodes": 100,
                "curve_every": 2, "curve_episodes": 20},
    "long": {"demos": 200, "sft_steps": 5000, "rollouts": 100, "heldout_rollouts": 40,
             "tpo_steps": 100, "ppo_iterations": 40, "ppo_episodes": 32, "eval_episodes": 200,
             "curve_every": 4, "curve_episodes": 40},
    "tiny": {"demos": 3, "sft_steps": 30, "rollouts": 4, "heldout_rollouts": 2, "tpo_steps": 4,
             "ppo_iterations": 1, "ppo_episodes": 2, "eval_episodes": 2, "curve_every": 1,
             "curve_episodes": 2},
}
STEP_NAMES = ("demos", "stages", "sft", "rollouts", "pairs", "sta_tpo", "sta_ppo", "ppo")
DONE_FILE = "ipi_state.json"
# what a run folder's results depend on, beside the sizes: resuming with other values would
# silently mix two experiments (e.g. PushCube demos evaluated as StackCube)
IDENTITY_ARGS = ("task", "obs", "policy", "seed")


class RunMismatchError(ValueError):
    """The run folder was made with other settings than this invocation asks for."""

@dataclass
class IPIArgs:
    """Imitation -> Preference -> Interaction on one ManiSkill3 task, with its report."""

    task: str = "PushCube-v1"
    """Task, e.g. PushCube-v1."""
    out: Path | None = None
    """Run folder (default runs/<task>); re-running skips finished steps."""
    budget: Literal["default", "long", "tiny"] = "default"
    """Preset sizes (tiny: a smoke run of the whole pipeline in a couple of minutes)."""
    obs: Literal["state", "rgb"] = "state"
    """Observation mode of the demos and the policy."""
    policy: str = "pi0"
    """A registered policy type (stare-robot train sft --help lists them)."""
    demos: int | None = None
    sft_steps: int | None = None
    rollouts: int | None = None
    heldout_rollouts: int | None = None
    """Rollouts on seeds 30 000.. whose pairs select STA-TPO's checkpoint."""
    tpo_steps: int | None = None
    ppo_iterations: int | None = None
    ppo_episodes: int | None = None
    """Episodes per PPO iteration."""
    eval_episodes: int | None = None
    """Held-out evaluation episodes after each step (seeds 10 000..)."""
    curve_every: int | None = None
    """PPO iterations between learning-curve evaluations."""
    curve_episodes: int | None = None
    compare_ppo: bool = True
    """Also run plain PPO with the same budget, for the PPO vs STA-PPO curves."""
    num_envs: int = 2
    """Parallel environments for PPO rollouts."""
    seed: int = 0
    threads: int = 1
    device: str = "cpu"
    """Where every policy trains, collects and is evaluated (e.g. cuda:0)."""
    sim_backend: str = "auto"
    quiet: bool = False

    def resolved(self) -> dict[str, Any]:
        """The budget preset with every explicitly given number applied."""
        sizes = dict(BUDGETS[self.budget])
        for name in sizes:
            if getattr(self, name) is not None:
                sizes[name] = getattr(self, name)
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        return sizes


@dataclass
class Run:
    """Paths and bookkeeping of one IPI run folder."""

    args: IPIArgs
    root: Path
    sizes: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.root / name

    def identity(self) -> dict[str, Any]:
        return {**{name: getattr(self.args, name) for name in IDENTITY_ARGS}, **self.sizes}

    def load(self) -> None:
        """Read the folder's state; refuse a folder whose finished steps used other settings."""
        f = self.root / DONE_FILE
        self.state = json.loads(f.read_text()) if f.exists() else {"steps": {}}
        made_with, wanted = self.state.get("identity"), self.identity()
        if made_with is not None and made_with != wanted:
            diffs = ", ".join(f"{k.replace('_', '-')} {made_with.get(k)!r} (asked: {wanted.get(k)!r})"
                              for k in sorted(set(made_with) | set(wanted))
                              if made_with.get(k) != wanted.get(k))
            raise RunMismatchError(
                f"{self.root} holds a run made with {diffs}; re-run with its settings to finish "
                "it, or give another --out")
        # folders from before the identity was recorded adopt this invocation's
        self.state["identity"] = wanted

    def finished(self, step: str) -> bool:
        return step in self.state["steps"]

    def mark(self, step: str, **info: Any) -> None:
        self.state["steps"][step] = {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        atomic_write_text(self.root / DONE_FILE, json.dumps(self.state, indent=2, default=str))

    def log(self, text: str) -> None:
        print(f"[ipi] {text}", flush=True)


# ------------------------------------------------------------------------------------ steps


def _seeds_in(store_path: Path) -> list[int]:
    try:
        return [int(ep.attrs[keys.ATTR_SEED]) for ep in EpisodeStore.open(store_path)]
    except StoreError:
        return []


def step_demos(run: Run) -> dict[str, Any]:
    data, want = run.path("demos.zarr"), run.sizes["demos"]
    # seeds 0.. until `want` are kept; generate_demos skips the seeds already committed
    summary = generate_demos(
        run.args.task, want, 0, data, obs_mode=run.args.obs, progress=not run.args.quiet,
        sim_backend=run.args.sim_backend,
    )
    if summary["resumed"]:
        run.log(f"demos: {summary['resumed']} already in {data}, recorded {summary['kept']} more")
    if summary["kept"] + summary["resumed"] < want:
        raise RuntimeError(f"the expert kept only {summary['kept'] + summary['resumed']} demos: "
                           f"{summary['failed']}")
    return {"episodes": len(_seeds_in(data))}


def step_stages(run: Run) -> dict[str, Any]:
    data = str(run.path("demos.zarr"))
    if stages_main(["annotate", data]) != 0:
        raise RuntimeError(f"stage annotation of {data} failed")
    stages_main(["show", data, "--episodes", "0", "1", "--out", str(run.path("stages.png"))])
    return {}


def step_sft(run: Run) -> dict[str, Any]:
    args = SFTArgs(
        data=run.path("demos.zarr"), out=run.path("sft"), policy=run.args.policy,
        steps=run.sizes["sft_steps"], seed=run.args.seed, resume=True, quiet=run.args.quiet,
        threads=run.args.threads, device=run.args.device,
        save_every=max(10, min(500, run.sizes["sft_steps"] // 4)),
        warmup_steps=min(100, max(1, run.sizes["sft_steps"] // 10)),
    )
    run_sft(args)
    return {"checkpoint": str(run.path("sft") / "final")}


def _collect(run: Run, store: Path, first_seed: int, want: int) -> int:
    """Sampled SFT rollouts on seeds ``first_seed``.. into ``store``, resuming by seed."""

    seeds = _seeds_in(store)
    next_seed = max(seeds, default=first_seed - 1) + 1
    # episodes solved at reset are not stored: count attempts by seed, not by stored episodes
    todo = want - (next_seed - first_seed)
    if todo > 0:
        ckpt = run.path("sft") / "final"
        collect_rollouts(
            ckpt, run.args.task, todo, store, seed=next_seed, progress=not run.args.quiet,
            sim_backend=run.args.sim_backend, policy=load_policy(ckpt, device=run.args.device),
        )
    return len(_seeds_in(store))


def step_rollouts(run: Run) -> dict[str, Any]:
    return {
        "episodes": _collect(run, run.path("rollouts.zarr"), DEFAULT_COLLECT_SEED,
                             run.sizes["rollouts"]),
        "heldout_episodes": _collect(run, run.path("rollouts_heldout.zarr"), HELDOUT_COLLECT_SEED,
                                     run.sizes["heldout_rollouts"]),
    }


def step_pairs(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for name, store, out in (("pairs", "rollouts.zarr", "pairs.json"),
                             ("heldout_pairs", "rollouts_heldout.zarr", "pairs_heldout.json")):
        if not run.path(store).exists():  # a run folder from before held-out rollouts
            info[name] = 0
            continue
        try:
            info[name] = len(make_pairs_file([run.path(store)], run.path(out), seed=run.args.seed))
        except PreferenceError as err:
            info[name] = 0
            info[f"{name}_reason"] = str(err)
    if info["pairs"] == 0:
        run.log(f"pairs: none ({info.get('pairs_reason')}); STA-TPO will be skipped")
    elif info["heldout_pairs"] == 0:
        run.log("pairs: no held-out pair; STA-TPO keeps its last checkpoint, unselected")
    return info


def tpo_start(run: Run) -> Path:
    """The checkpoint STA-PPO starts from: STA-TPO's, or SFT's when STA-TPO was skipped."""
    final = run.path("sta_tpo") / "final"
    return final if final.is_dir() else run.path("sft") / "final"


def step_sta_tpo(run: Run) -> dict[str, Any]:
    if run.state["steps"].get("pairs", {}).get("pairs", 0) == 0:
        return {"skipped": "no preference pairs"}
    steps = run.sizes["tpo_steps"]
    heldout = run.state["steps"]["pairs"].get("heldout_pairs", 0) > 0
    summary = run_tpo(TPOArgs(
        ckpt=run.path("sft") / "final", pairs=run.path("pairs.json"), out=run.path("sta_tpo"),
        eval_pairs=run.path("pairs_heldout.json") if heldout else None, stage_aware=True,
        steps=steps, seed=run.args.seed, resume=True, save_every=max(1, steps // 3),
        select_every=max(1, min(DEFAULT_SELECT_EVERY, steps // 3)), quiet=run.args.quiet,
        threads=run.args.threads, device=run.args.device,
    ))
    return {"checkpoint": str(run.path("sta_tpo") / "final"), "held_out_selection": heldout,
            "selected_step": summary.get("selected_step")}


def _ppo(run: Run, name: str, stage_aware: bool) -> dict[str, Any]:
    start = tpo_start(run)
    run_ppo(PPOArgs(
        ckpt=start, task=run.args.task, out=run.path(name), stage_aware=stage_aware,
        iterations=run.sizes["ppo_iterations"], episodes_per_iter=run.sizes["ppo_episodes"],
        num_envs=run.args.num_envs, eval_every=run.sizes["curve_every"],
        eval_episodes=run.sizes["curve_episodes"], seed=run.args.seed, resume=True,
        sim_backend=run.args.sim_backend, quiet=run.args.quiet, threads=run.args.threads,
        device=run.args.device,
    ))
    return {"checkpoint": str(run.path(name) / "final"), "start": str(start)}


def step_sta_ppo(run: Run) -> dict[str, Any]:
    return _ppo(run, "sta_ppo", stage_aware=True)


def step_plain_ppo(run: Run) -> dict[str, Any]:
    if not run.args.compare_ppo:
        return {"skipped": "--no-compare-ppo"}
    return _ppo(run, "ppo", stage_aware=False)


STEPS = {
    "demos": step_demos,
    "stages": step_stages,
    "sft": step_sft,
    "rollouts": step_rollouts,
    "pairs": step_pairs,
    "sta_tpo": step_sta_tpo,
    "sta_ppo": step_sta_ppo,
    "ppo": step_plain_ppo,
}
# the report's rows: label -> (folder whose final/ is evaluated, the step that made it)
EVALUATED = {"SFT": ("sft", "sft"), "SFT→STA-TPO": ("sta_tpo", "sta_tpo"),
             "IPI (→STA-PPO)": ("sta_ppo", "sta_ppo"), "SFT→STA-TPO→PPO": ("ppo", "ppo")}


def evaluate_step(run: Run, label: str, folder: str) -> dict[str, Any] | None:
    """Held-out evaluation of ``folder/final`` (cached in eval/<folder>/results.json)."""

    ckpt = run.path(folder) / "final"
    if not ckpt.is_dir():
        return None
    cached = run.path("eval") / folder / "results.json"
    if cached.exists():
        return json.loads(cached.read_text())[label]
    run.log(f"eval: {label} on {run.sizes['eval_episodes']} held-out seeds")
    summary, _ = evaluate(load_policy(ckpt, device=run.args.device), run.args.task,
                          run.sizes["eval_episodes"],
                          progress=not run.args.quiet, sim_backend=run.args.sim_backend)
    write_report({label: summary}, cached.parent, title=f"{run.args.task}: {label}")
    return summary


def run_ipi(args: IPIArgs) -> dict[str, Any]:
    """Run (or finish) every step; returns the report's results and paths."""

    spec = get_task(args.task)
    args.task = spec.name
    root = Path(args.out) if args.out is not None else Path("runs") / spec.name
    run = Run(args, root, args.resolved())
    root.mkdir(parents=True, exist_ok=True)
    run.load()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    timings = dict(run.state.get("timings_s", {}))
    for name, fn in STEPS.items():
        if run.finished(name):
            run.log(f"{name}: finished earlier, skipped")
            continue
        run.log(f"{name}: running")
        t = time.perf_counter()
        info = fn(run)
        timings[name] = round(time.perf_counter() - t, 1)
        run.state["timings_s"] = timings
        run.mark(name, **info)
        if name in {folder for folder, _ in EVALUATED.values()}:
            label = next(k for k, (f, _) in EVALUATED.items() if f == name)
            t = time.perf_counter()
            evaluate_step(run, label, name)
            timings[f"eval_{name}"] = round(time.perf_counter() - t, 1)
            run.state["timings_s"] = timings
            run.mark(name, **info)
    results = {label: r for label, (folder, _) in EVALUATED.items()
               if (r := evaluate_step(run, label, folder)) is not None}

    paths = write_ipi_report(run, results)
    run.log(f"done in {time.perf_counter() - t0:.0f} s this invocation; report: {paths['md']}")
    return {"results": results, "paths": paths, "root": root, "sizes": run.sizes}


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(IPIArgs, args=argv, prog="stare-robot ipi")
    try:
        summary = run_ipi(args)
    except (UnknownTaskError, EvalInputError, PPOInputError, ValueError, FileNotFoundError) as err:
        print(f"stare-robot ipi: {err}", file=sys.stderr)
        return 2
    print(summary["paths"]["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

