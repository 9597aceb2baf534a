"""Expert demonstrations recorded in the 7-D EE-delta action space.

    stare-robot demos --task PushCube-v1 --num 100 --seed 0 --out data/pushcube.zarr [--obs rgb]
    stare-robot demos --task PutCarrotOnPlateInScene-v1 --num 50 --out data/carrot.zarr

The expert is the task's (``TaskSpec.expert``): ManiSkill's motion-planner solutions for the Franka
tasks (:mod:`stare_robot.sim.expert`), a scripted pick-and-place for the SimplerEnv-WidowX tasks
(:mod:`stare_robot.sim.expert_bridge`; their assets come from ``MS_ASSET_DIR``).
Seeds ``seed, seed + 1, ...`` are tried until ``num`` episodes succeed in the EE-delta env; only
those are committed, each with its seed so
:func:`stare_robot.sim.replay.replay_episode` can reproduce it. The same command after a crash
completes the store: a seed whose episode (same task and observation mode) is already committed is
counted, not recorded again, so the result is what one uninterrupted run would have written.

Per step the episode holds the observation *before* the action (``obs/*`` and the privileged
``sim/*`` state), the action, and the ``reward`` / ``sim/success`` the action produced.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tyro
from stare_robot.sim.env import OBS_MODES, SimEnv, Step, make_env
from stare_robot.sim.expert import EEDeltaExpert
from stare_robot.sim.expert_bridge import BridgeExpert
from stare_robot.sim.tasks import EXPERT_SCRIPTED, UnknownTaskError, get_task
from tqdm.auto import tqdm

import stare_robot
from stare_robot import keys
from stare_robot.data.errors import StoreError
from stare_robot.data.store import EpisodeStore

# Families whose demos must grasp the object; a success without one is a degenerate start, not a
# demonstration of the task, and would teach neither the grasp nor its stages.
GRASP_FAMILIES = frozenset({"pick_place", "stack", "lift_upright"})
EPISODE_STEP_LIMIT = 400  # ManiSkill's own time limit (50) would cut slow demos; we stop on success


def episode_attrs(sim: SimEnv, seed: int, success: bool) -> dict[str, Any]:
    """The attrs of one recorded sim episode (keys from :mod:`stare_robot.keys`)."""
    spec = sim.spec
    return {
        keys.ATTR_TASK: spec.name,
        keys.ATTR_ENV_ID: spec.env_id,
        keys.ATTR_INSTRUCTION: spec.instruction,
        keys.ATTR_ROBOT: spec.robot,
        keys.ATTR_SOURCE: "sim",
        keys.ATTR_SUCCESS: bool(success),
        keys.ATTR_SEED: int(seed),
        keys.ATTR_OBS_MODE: sim.obs_mode,
        keys.ATTR_STAGE_FAMILY: spec.stage_family,
        keys.ATTR_CONTROL_RATE: sim.control_rate_hz,
        keys.ATTR_ACTION_SPACE: keys.ACTION_SPACE_EE_DELTA,
        keys.ATTR_CODE_VERSION: stare_robot.__version__,
        **spec.stage_settings,  # obj_half_size and any other stage-family setting of the task
    }


def make_expert(sim: SimEnv, sim_backend: str = "auto"):
    """The task's expert on ``sim``: ``run(seed) -> Rollout`` and ``close()``."""
    if sim.spec.expert == EXPERT_SCRIPTED:
        return BridgeExpert(sim)
    return EEDeltaExpert(sim, planner_backend=sim_backend)


def step_record(before: Step, action: np.ndarray, after: Step, t: int, rate_hz: float) -> dict:
    """One stored step: observation and privileged state before ``action``, outcome after it."""
    record = {k: np.asarray(v) for k, v in before.obs.items() if k != keys.INSTRUCTION}
    for key, value in before.privileged.items():
        if key.startswith(keys.SIM + "/") and key != keys.SIM_SUCCESS:
            record[key] = np.asarray(value)
    record[keys.ACTION] = np.asarray(action, np.float32)
    record[keys.TIMESTAMP] = np.float64(t / rate_hz)
    record[keys.REWARD] = np.float32(after.reward)
    record[keys.SIM_SUCCESS] = np.bool_(after.success)
    return record


def generate_demos(
    task: str,
    num: int,
    seed: int,
    out: Path | str,
    obs_mode: str = "state",
    progress: bool = True,
    *,
    image_size: int = 128,
    sim_backend: str = "auto",
    max_attempts: int | None = None,
) -> dict[str, Any]:
    """Record ``num`` successful expert episodes of ``task`` into the store at ``out``.

    Tries seeds ``seed, seed + 1, ...`` (at most ``max_attempts``, default ``5 * num + 10``); a
    seed already committed in ``out`` for this task and observation mode counts as kept and is not
    recorded again (resume after a crash). Returns a summary: ``attempted`` (seeds looked at),
    ``kept`` (recorded now), ``resumed`` (found committed), ``failed`` ({reason: count}),
    ``seeds`` (recorded now), ``lengths`` (steps per recorded episode), ``seconds``, ``out``.
    """
    spec = get_task(task)
    if obs_mode not in OBS_MODES:
        raise ValueError(f"unknown obs_mode '{obs_mode}'; valid: {', '.join(OBS_MODES)}")
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    max_attempts = 5 * num + 10 if max_attempts is None else max_attempts

    store = EpisodeStore.create(
        out, attrs={keys.ATTR_TASK: spec.name, keys.ATTR_ACTION_SPACE: keys.ACTION_SPACE_EE_DELTA}
    )
    committed = committed_seeds(store, spec.name, obs_mode)
    start = time.perf_counter()
    failed: Counter[str] = Counter()
    seeds: list[int] = []
    lengths: list[int] = []
    attempted = resumed = 0
    sim = make_env(
        spec.name,
        obs_mode,
        image_size,
        sim_backend=sim_backend,
        max_episode_steps=EPISODE_STEP_LIMIT,
    )
    expert = make_expert(sim, sim_backend)
    bar = tqdm(total=num, desc=f"demos {spec.name} ({obs_mode})", unit="ep", disable=not progress)
    try:
        while len(seeds) + resumed < num and attempted < max_attempts:
            current = seed + attempted
            attempted += 1
            if current in committed:
                resumed += 1
                bar.update(1)
                continue
            rollout = expert.run(current)
            failure = None if rollout.success else (rollout.failure or "unknown")
            if failure is None and spec.stage_family in GRASP_FAMILIES and not any(
                bool(step.privileged[keys.SIM_IS_GRASPED]) for step in rollout.steps
            ):
                # e.g. PickCube with the goal spawned beside the cube: "success" without the skill
                failure = "succeeded without a grasp"
            if failure is not None:
                failed[failure] += 1
                bar.set_postfix(failed=sum(failed.values()))
                continue
            with store.new_episode(attrs=episode_attrs(sim, current, False)) as ep:
                for t, (before, action, after) in enumerate(
                    zip(rollout.steps, rollout.actions, rollout.results)
                ):
                    ep.append(step_record(before, action, after, t, sim.control_rate_hz))
                ep.set_attrs(success=True)
            seeds.append(current)
            lengths.append(len(rollout.actions))
            bar.update(1)
    finally:
        bar.close()
        expert.close()
        sim.close()
    return {
        "task": spec.name,
        "obs_mode": obs_mode,
        "attempted": attempted,
        "kept": len(seeds),
        "resumed": resumed,
        "failed": dict(failed),
        "seeds": seeds,
        "lengths": lengths,
        "seconds": time.perf_counter() - start,
        "out": str(out),
    }


def committed_seeds(store: EpisodeStore, task: str, obs_mode: str) -> set[int]:
    """Seeds of the committed episodes of ``task`` recorded in ``obs_mode`` in ``store``."""
    return {
        int(ep.attrs[keys.ATTR_SEED]) for ep in store
        if ep.attrs.get(keys.ATTR_TASK) == task and ep.attrs.get(keys.ATTR_OBS_MODE) == obs_mode
        and keys.ATTR_SEED in ep.attrs
    }


def format_summary(summary: dict[str, Any]) -> str:
    lengths = summary["lengths"] or [0]
    failed = ", ".join(f"{n} {why}" for why, n in summary["failed"].items()) or "none"
    resumed = summary.get("resumed", 0)
    already = f" (+{resumed} already in the store)" if resumed else ""
    return (
        f"{summary['task']}: attempted {summary['attempted'] - resumed}, kept "
        f"{summary['kept']}{already}, failed {summary['attempted'] - summary['kept'] - resumed} "
        f"({failed}); steps per episode "
        f"min {min(lengths)} / mean {np.mean(lengths):.1f} / max {max(lengths)}; "
        f"{summary['seconds']:.1f} s -> {summary['out']}"
    )


@dataclass
class DemosArgs:
    """Generate motion-planner demonstrations (7-D EE-delta actions) into a Zarr episode store."""

    task: str
    """Task name, e.g. PushCube-v1 (StackCube-v1, PullCube-v1, LiftPegUpright-v1, PickCube-v1, or a
    SimplerEnv-WidowX task such as PutCarrotOnPlateInScene-v1)."""
    out: Path
    """Episode store to create or append to (the same command after a crash completes it)."""
    num: int = 100
    """How many successful episodes to keep."""
    seed: int = 0
    """The first env seed tried; later attempts use seed+1, seed+2, ..."""
    obs: Literal["state", "rgb"] = "state"
    """Observation mode: privileged state vector, or a camera image + proprioception."""
    image_size: int = 128
    """Camera image side in pixels (rgb mode)."""
    sim_backend: Literal["auto", "physx_cpu", "physx_cuda"] = "auto"
    """auto: GPU sim when CUDA is present, else CPU."""
    max_attempts: int | None = None
    """Give up after this many seeds (default 5 * num + 10)."""
    quiet: bool = False
    """No progress bar."""


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(DemosArgs, args=argv, prog="stare-robot demos")
    try:
        summary = generate_demos(
            args.task,
            args.num,
            args.seed,
            args.out,
            obs_mode=args.obs,
            progress=not args.quiet,
            image_size=args.image_size,
            sim_backend=args.sim_backend,
            max_attempts=args.max_attempts,
        )
    except (UnknownTaskError, ValueError, StoreError, FileNotFoundError) as err:
        print(f"stare-robot demos: {err}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0 if summary["kept"] + summary["resumed"] == args.num else 1


if __name__ == "__main__":
    raise SystemExit(main())
