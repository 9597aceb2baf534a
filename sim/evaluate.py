"""Evaluate a policy by closed-loop rollouts in ManiSkill3.

    stare-robot eval --ckpt runs/sft_pushcube/final --task PushCube-v1 --episodes 100 \\
        --out runs/sft_pushcube/eval

Seed convention: demonstrations are generated from seed 0 upward (``stare-robot demos --seed 0``
tries 0, 1, 2, ... and a few hundred at most), evaluation uses ``--seed`` (default
:data:`EVAL_SEED_START` = 10 000) upward, so evaluation initial states are never training ones.

Horizon (``--max-steps``, default per task in :data:`DEFAULT_MAX_STEPS`): the paper's 30 steps
do not fit every task in our EE-delta action space at 20 Hz (LiftPegUpright demos take ~67 steps, the
longest StackCube demo 106),
so the default is :func:`max_steps_for` the task's expert demos: twice the longest of 100
motion-planner demos, rounded up to a multiple of 10 — room for a policy somewhat slower than the
expert without letting a failed episode wander for long. Measured longest of 100 demos each
(seeds 0 upward): PushCube 38, PullCube 51, PickCube 37, StackCube 106, LiftPegUpright 71.

Chunk execution (``--execute-steps``, default 2): the first 2 actions of each predicted 4-step
chunk are executed before re-querying, a compromise between reactivity (1) and open-loop chunking
(4). Measured once on PushCube-v1 (pi0, 1500 SFT steps, 30 held-out seeds): 1 -> 80 %,
2 -> 100 % (mean length 14.1), 4 -> 100 % (14.7).

Reported (:func:`stare_robot.eval.metrics.summarize`): success rate with a 95 % Wilson interval,
grasp success where the task has a grasp stage, conditional stage success per stage from the
online :class:`~stare_robot.stages.StageTracker` and mean episode length; written as
``results.json``, ``results.md`` and ``results.png`` (+ ``videos/seed_<s>.gif`` in rgb mode).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import torch
import tyro
from stare_robot.sim.env import make_env
from stare_robot.sim.rollout import rollout_episode
from stare_robot.sim.tasks import UnknownTaskError, get_task
from tqdm.auto import tqdm

from stare_robot import keys
from stare_robot.client import PolicyClient, PolicyServerError
from stare_robot.data.store import StoreError
from stare_robot.eval.metrics import summarize
from stare_robot.eval.recorded import RecordedEvalError, evaluate_store
from stare_robot.eval.report import write_report
from stare_robot.policies import load_policy
from stare_robot.stages import get_family

EVAL_SEED_START = 10_000  # demos use seeds 0, 1, 2, ...; evaluation starts far above them
DEFAULT_EXECUTE_STEPS = 2
# Default max steps per task: max_steps_for(lengths of 100 expert demos), see the module doc.
DEFAULT_MAX_STEPS: dict[str, int] = {
    "PushCube-v1": 80,
    "PullCube-v1": 110,
    "PickCube-v1": 80,
    "StackCube-v1": 220,
    "LiftPegUpright-v1": 150,
    # SimplerEnv-WidowX: the paper's (and SimplerEnv's) 60 steps at 5 Hz
    "PutSpoonOnTableClothInScene-v1": 60,
    "PutCarrotOnPlateInScene-v1": 60,
    "StackGreenCubeOnYellowCubeBakedTexInScene-v1": 60,
    "PutEggplantInBasketScene-v1": 60,
}


class EvalInputError(ValueError):
    """The policy and the evaluation environment do not fit together."""


def max_steps_for(demo_lengths: Sequence[int]) -> int:
    """The horizon rule: twice the longest expert demo, rounded up to a multiple of 10."""
    return int(-(-2 * max(demo_lengths) // 10) * 10)


def default_max_steps(task: str) -> int:
    spec = get_task(task)
    return DEFAULT_MAX_STEPS.get(spec.name, 200)


def policy_obs_mode(policy: Any) -> str:
    """``"rgb"`` when the policy reads a camera image, else ``"state"``."""
    inputs = policy.metadata.inputs
    return "rgb" if any(keys.is_rgb(k) for k in inputs) else "state"


def policy_image_size(policy: Any, default: int = 128) -> int:
    """Side of the square camera image the policy reads (``default`` for state-mode policies)."""
    sizes = [int(s.shape[0]) for k, s in policy.metadata.inputs.items() if keys.is_rgb(k)]
    return sizes[0] if sizes else default


def check_policy_fits_env(policy: Any, obs: dict[str, Any], task: str) -> None:
    """Raise :class:`EvalInputError` naming each input the policy needs that the env's
    observation lacks or shapes differently (a missing camera, another task's env state)."""
    problems = []
    for key, spec in policy.metadata.inputs.items():
        if key not in obs:
            problems.append(f"{key!r} is missing (the env gives {sorted(k for k in obs if k != keys.INSTRUCTION)})")
        elif tuple(np.shape(obs[key])) != tuple(spec.shape):
            problems.append(
                f"{key!r} has shape {tuple(np.shape(obs[key]))} in {task}, the policy expects "
                f"{tuple(spec.shape)}"
            )
    if problems:
        raise EvalInputError(
            f"policy {policy.metadata.name!r} does not fit {task}: " + "; ".join(problems)
            + ". Was it trained on another task or observation mode?"
        )


def evaluate(
    policy: Any,
    task: str,
    episodes: int,
    seed: int = EVAL_SEED_START,
    max_steps: int | None = None,
    execute_steps: int = DEFAULT_EXECUTE_STEPS,
    video_seeds: Sequence[int] = (),
    progress: bool = True,
    sim_backend: str = "auto",
) -> tuple[dict[str, Any], dict[int, list[np.ndarray]]]:
    """Roll ``policy`` out on seeds ``seed .. seed + episodes - 1``.

    Returns (summary from :func:`~stare_robot.eval.metrics.summarize` plus the settings used,
    {seed: frames} for ``video_seeds`` in rgb mode).
    """
    spec = get_task(task)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    max_steps = default_max_steps(spec.name) if max_steps is None else max_steps
    obs_mode = policy_obs_mode(policy)
    env = make_env(spec.name, obs_mode, policy_image_size(policy), sim_backend=sim_backend,
                   max_episode_steps=max_steps)
    outcomes, videos = [], {}
    try:
        check_policy_fits_env(policy, env.reset(seed=seed).obs, spec.name)
        for s in tqdm(range(seed, seed + episodes), desc=f"eval {spec.name}", unit="ep",
                      disable=not progress):
            record = obs_mode == "rgb" and s in set(video_seeds)
            result = rollout_episode(env, policy, s, max_steps, execute_steps, record_frames=record)
            outcomes.append(result.outcome)
            if record:
                videos[s] = result.frames
    finally:
        env.close()
    summary = summarize(outcomes, get_family(spec.stage_family).stage_names)
    summary.update(task=spec.name, obs_mode=obs_mode, seed_start=seed, max_steps=max_steps,
                   execute_steps=execute_steps)
    return summary, videos


def _evaluate_recorded(args: EvalArgs) -> int:
    """``--episodes STORE``: the same report from recorded episodes (no simulator, no policy)."""
    store = Path(args.episodes)
    try:
        summary = evaluate_store(store)
    except (StoreError, RecordedEvalError) as err:
        print(f"stare-robot eval: --episodes {store}: {err}", file=sys.stderr)
        return 2
    out = args.out or store.with_name(f"{store.stem}_eval")
    paths = write_report({args.name: summary}, out, title=f"recorded episodes: {store}")
    print(f"{store}: success {100 * summary['success_rate']:.1f}% over {summary['episodes']} "
          f"recorded episodes -> {paths['md']}")
    return 0


def write_videos(videos: dict[int, list[np.ndarray]], out_dir: Path, fps: float) -> list[Path]:
    paths = []
    for s, frames in videos.items():
        path = Path(out_dir) / "videos" / f"seed_{s}.gif"
        path.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimsave(path, [np.asarray(f, np.uint8) for f in frames], duration=1.0 / fps)
        paths.append(path)
    return paths


@dataclass
class EvalArgs:
    """Evaluate a policy checkpoint by rollouts in ManiSkill3 (held-out seeds)."""

    ckpt: Path | None = None
    """Policy checkpoint folder (e.g. runs/sft/final), evaluated in-process."""
    task: str | None = None
    """Task name, e.g. PushCube-v1 (needed for simulation rollouts)."""
    server: str | None = None
    """Evaluate through a running `stare-robot serve` instead of --ckpt (e.g. http://127.0.0.1:8000);
    the rollout loop is the same, only predict() crosses the network."""
    token: str | None = None
    """Bearer token for --server, if the server requires one."""
    episodes: str = "100"
    """How many simulation episodes, or the path of an episode store whose recorded episodes (sim
    rollouts or robot recordings) are scored with the same metrics, no simulation."""
    seed: int = EVAL_SEED_START
    """First evaluation seed (demos use 0 upward; keep this far above them)."""
    max_steps: int | None = None
    """Actions per episode before it counts as failed (default: per task, see module doc)."""
    execute_steps: int = DEFAULT_EXECUTE_STEPS
    """Actions of each predicted chunk executed before re-querying the policy."""
    out: Path | None = None
    """Report folder (results.json/.md/.png); default <ckpt>/eval_<task>."""
    video_episodes: int = 0
    """Save a gif of the first N episodes (rgb-mode policies only, for now; a state-mode policy
    gets a warning)."""
    name: str = "policy"
    """Row name in the report."""
    threads: int = 1
    """torch intra-op threads (1 is fastest for a tiny policy on a loaded machine)."""
    device: str = "cpu"
    """Where the policy runs with --ckpt (e.g. cuda:0)."""
    sim_backend: str = "auto"
    quiet: bool = False


def video_warning(policy: Any, video_episodes: int) -> str | None:
    """Why ``--video-episodes`` will record nothing for ``policy``, or None when it will."""
    if video_episodes > 0 and (mode := policy_obs_mode(policy)) != "rgb":
        return (f"warning: --video-episodes {video_episodes} records nothing: videos need an rgb "
                f"policy for now, and this one observes {mode!r}")
    return None


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(EvalArgs, args=argv, prog="stare-robot eval")
    if not args.episodes.isdigit():
        return _evaluate_recorded(args)
    try:
        if (args.ckpt is None) == (args.server is None):
            raise EvalInputError("give exactly one of --ckpt (in-process) or --server (served)")
        if args.task is None:
            raise EvalInputError("--task is required for simulation rollouts")
        torch.set_num_threads(args.threads)
        get_task(args.task)  # a bad name fails before the checkpoint is loaded
        if args.server:
            policy = PolicyClient(args.server, token=args.token)
        else:
            policy = load_policy(args.ckpt, device=args.device)
        if (warning := video_warning(policy, args.video_episodes)) is not None:
            print(f"stare-robot eval: {warning}", file=sys.stderr)
        video_seeds = range(args.seed, args.seed + args.video_episodes)
        summary, videos = evaluate(policy, args.task, int(args.episodes), args.seed,
                                   args.max_steps, args.execute_steps, video_seeds,
                                   not args.quiet, args.sim_backend)
    except (UnknownTaskError, EvalInputError, FileNotFoundError, ValueError,
            PolicyServerError) as err:
        print(f"stare-robot eval: {err}", file=sys.stderr)
        return 2
    source = args.ckpt or args.server
    out = args.out or (Path(args.ckpt) if args.ckpt else Path("runs")) / f"eval_{summary['task']}"
    paths = write_report({args.name: summary}, out, title=f"{summary['task']}: {source}")
    if videos:
        write_videos(videos, out, policy.metadata.control_rate_hz)
    lo, hi = summary["success_ci95"]
    print(f"{summary['task']}: success {100 * summary['success_rate']:.1f}% "
          f"(95% CI {100 * lo:.1f}-{100 * hi:.1f}) over {summary['episodes']} episodes, "
          f"mean length {summary['mean_length']:.1f} -> {paths['md']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
