"""Rollout collection for preference (TPO) and RL fine-tuning: a sampling policy in ManiSkill3,
every episode stored whole (observations, privileged state, actions, success, stages).

    stare-robot rollouts --ckpt runs/sft_pushcube/final --task PushCube-v1 --num 40 \\
        --seed 20000 --out data/pushcube_rollouts.zarr

Episode ``i`` starts from ``env.reset(seed + i)`` (rebuilt scene, as ``sim/rollout.py`` and the
demos do) and ends at the first success or after ``--max-steps`` actions. The policy samples: each
query's randomness comes from ``SeedSequence([episode seed, query index])``, so a collection is
reproducible. The first ``--execute-steps`` actions of each chunk are executed.

Stored per step (on top of what ``stare-robot demos`` stores: ``obs/*``, ``sim/*``, ``action``,
``reward``, ``timestamp``): ``stage`` (STARE separator over the privileged state),
``policy/query_step`` (the step whose observation produced this action) and ``policy/sample``
(what that chunk's log-likelihood needs, the policy's sampling record (training protocol,
:mod:`stare_robot.policies.protocol`): for pi0 the sampled normalised chunk for the token head,
the whole noisy denoising chain for the flow head). The log-likelihood is not stored: the trainer
recomputes it under the policy and the reference, which keeps the rollouts policy-agnostic.

Why not ``sim/rollout.py``'s loop: it keeps only the outcome; collection needs every step's
observation and privileged state and the sampler's record. (A per-step callback in
``rollout_episode`` plus a ``predict`` hook would let both share one loop.)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tyro
from stare_robot.sim.demos import episode_attrs, step_record
from stare_robot.sim.env import make_env
from stare_robot.sim.evaluate import (
    DEFAULT_EXECUTE_STEPS,
    EvalInputError,
    check_policy_fits_env,
    default_max_steps,
    policy_image_size,
    policy_obs_mode,
)
from stare_robot.sim.tasks import UnknownTaskError, get_task
from tqdm.auto import tqdm

from stare_robot import keys
from stare_robot.data.errors import StoreError
from stare_robot.data.store import EpisodeStore
from stare_robot.policies import load_policy
from stare_robot.policies.protocol import DEFAULT_NOISE_STD, sample_for_rollout
from stare_robot.stages import annotate_trajectory
from stare_robot.stages.annotate import fields_needed, resolve_family

DEFAULT_COLLECT_SEED = 20_000  # demos use 0.., evaluation 10 000..; rollouts for TPO start here
HELDOUT_COLLECT_SEED = 30_000  # rollouts whose pairs select a TPO checkpoint start here


def query_seed(episode_seed: int, query: int) -> int:
    """The sampler seed of one policy query (independent streams per episode and query)."""
    return int(np.random.SeedSequence([int(episode_seed), int(query)]).generate_state(1)[0])


def collect_episode(
    env, policy, seed: int, max_steps: int, execute_steps: int, noise_std: float
) -> tuple[list[dict[str, Any]], bool]:
    """One sampled episode -> (per-step records without ``stage``, success)."""
    if max_steps < 1 or execute_steps < 1:
        raise ValueError(
            f"max_steps and execute_steps must be >= 1, got {max_steps}, {execute_steps}"
        )
    step = env.reset(seed=seed, reconfigure=True)
    records: list[dict[str, Any]] = []
    success, query = bool(step.success), 0
    while not success and len(records) < max_steps:
        chunk, sample = sample_for_rollout(policy, step.obs, query_seed(seed, query), noise_std)
        query_step = len(records)
        query += 1
        for action in chunk[: min(execute_steps, max_steps - len(records))]:
            after = env.step(action)
            rec = step_record(step, action, after, len(records), env.control_rate_hz)
            rec[keys.POLICY_QUERY_STEP] = np.int32(query_step)
            rec[keys.POLICY_SAMPLE] = sample
            records.append(rec)
            step = after
            success = bool(after.success)
            if success:
                break
    return records, success


def stage_annotation(records: list[dict[str, Any]], attrs: dict[str, Any]):
    """STARE stages of a collected episode (family from the attrs)."""
    family = resolve_family(None, attrs)
    traj = {k: np.stack([r[k] for r in records]) for k in fields_needed(family) if k in records[0]}
    return annotate_trajectory(traj, family)


def collect_rollouts(
    ckpt: Path | str,
    task: str,
    num: int,
    out: Path | str,
    seed: int = DEFAULT_COLLECT_SEED,
    max_steps: int | None = None,
    execute_steps: int | None = None,
    noise_std: float | None = None,
    progress: bool = True,
    sim_backend: str = "auto",
    policy: Any = None,
    min_per_outcome: int = 0,
    max_num: int | None = None,
) -> dict[str, Any]:
    """Collect ``num`` sampled episodes of ``task`` into the store at ``out``; returns a summary
    (``successes``, ``seeds``, ``lengths``, ``episode_ids``, ``out``).

    Success-vs-failure pairs need both outcomes, and a good (or poor) policy rarely gives one of
    them: with ``min_per_outcome`` > 0, collection goes on past ``num`` (next seeds) until at
    least that many successful and that many failed episodes are stored, or ``max_num`` episodes
    were tried (default ``num``: no extension)."""
    spec = get_task(task)
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    max_num = num if max_num is None else max_num
    if max_num < num or min_per_outcome < 0:
        raise ValueError(
            f"need max_num >= num and min_per_outcome >= 0, got max_num {max_num}, num {num}, "
            f"min_per_outcome {min_per_outcome}"
        )
    max_steps = default_max_steps(spec.name) if max_steps is None else max_steps
    execute_steps = DEFAULT_EXECUTE_STEPS if execute_steps is None else execute_steps
    noise_std = DEFAULT_NOISE_STD if noise_std is None else noise_std
    if noise_std <= 0:
        raise ValueError(
            f"noise_std must be > 0 (the flow head's sampler must be stochastic), got {noise_std}"
        )
    policy = load_policy(ckpt) if policy is None else policy
    obs_mode = policy_obs_mode(policy)
    image_size = policy_image_size(policy)
    env = make_env(
        spec.name, obs_mode, image_size, sim_backend=sim_backend, max_episode_steps=max_steps + 1
    )
    store = EpisodeStore.create(
        out, attrs={keys.ATTR_TASK: spec.name, keys.ATTR_ACTION_SPACE: keys.ACTION_SPACE_EE_DELTA}
    )
    policy_attrs = {
        keys.ATTR_POLICY_CKPT: str(ckpt),
        keys.ATTR_POLICY_TYPE: policy.config.type,
        keys.ATTR_CHAIN_NOISE_STD: float(noise_std),
        keys.ATTR_EXECUTE_STEPS: int(execute_steps),
    }
    summary: dict[str, Any] = {
        "task": spec.name,
        "seeds": [],
        "successes": [],
        "lengths": [],
        "episode_ids": [],
        "out": str(out),
    }
    try:
        check_policy_fits_env(policy, env.reset(seed=seed).obs, spec.name)
        bar = tqdm(total=num, desc=f"rollouts {spec.name}", unit="ep", disable=not progress)
        for s in range(seed, seed + max_num):
            wins = sum(summary["successes"])
            rarest = min(wins, len(summary["successes"]) - wins)
            if s - seed >= num and rarest >= min_per_outcome:
                break
            if s - seed == num:  # extending: one outcome is rare
                bar.total = max_num
                bar.refresh()
            bar.update()
            records, success = collect_episode(env, policy, s, max_steps, execute_steps, noise_std)
            attrs = {**episode_attrs(env, s, success), **policy_attrs}
            if not records:  # solved at reset: nothing to learn from
                continue
            note = stage_annotation(records, attrs)
            with store.new_episode(attrs={**attrs, **note.store_attrs()}) as ep:
                for rec, stage in zip(records, note.stage):
                    ep.append({**rec, keys.STAGE: np.int16(stage)})
                episode_id = ep.commit()
            summary["seeds"].append(s)
            summary["successes"].append(bool(success))
            summary["lengths"].append(len(records))
            summary["episode_ids"].append(episode_id)
            bar.set_postfix(success=f"{np.mean(summary['successes']):.2f}")
        bar.close()
    finally:
        env.close()
    return summary


@dataclass
class RolloutsArgs:
    """Collect sampled policy rollouts (stages, likelihood records) into an episode store."""

    ckpt: Path
    """Policy checkpoint folder (e.g. runs/sft/final)."""
    task: str
    """Task name, e.g. PushCube-v1."""
    out: Path
    """Episode store to create or append to."""
    num: int = 40
    """Episodes to collect."""
    min_per_outcome: int = 0
    """Keep collecting past --num until this many successes and failures are stored."""
    max_num: int | None = None
    """Most episodes to try when extending (default: --num)."""
    seed: int = DEFAULT_COLLECT_SEED
    """First env seed (demos use 0.., evaluation 10 000..)."""
    max_steps: int | None = None
    """Actions per episode (default: the evaluation horizon of the task)."""
    execute_steps: int | None = None
    """Actions of each chunk executed before re-querying (default: evaluation's)."""
    noise_std: float | None = None
    """sigma of the flow head's noise-injected sampler (normalised units; default 0.1)."""
    threads: int = 1
    device: str = "cpu"
    """Where the policy runs (e.g. cuda:0)."""
    sim_backend: str = "auto"
    quiet: bool = False


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(RolloutsArgs, args=argv, prog="stare-robot rollouts")
    try:
        torch.set_num_threads(args.threads)
        get_task(args.task)
        policy = load_policy(args.ckpt, device=args.device)
        summary = collect_rollouts(
            args.ckpt,
            args.task,
            args.num,
            args.out,
            args.seed,
            args.max_steps,
            args.execute_steps,
            args.noise_std,
            not args.quiet,
            args.sim_backend,
            min_per_outcome=args.min_per_outcome,
            max_num=args.max_num,
            policy=policy,
        )
    except (UnknownTaskError, EvalInputError, StoreError, FileNotFoundError, ValueError) as err:
        print(f"stare-robot rollouts: {err}", file=sys.stderr)
        return 2
    n = len(summary["successes"])
    print(
        f"{summary['task']}: {n} episodes, {sum(summary['successes'])} successful, mean length "
        f"{np.mean(summary['lengths'] or [0]):.1f} -> {summary['out']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
