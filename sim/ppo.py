"""The PPO / STA-PPO driver in ManiSkill3: environments, rollouts, interval evaluation, resume.

    stare-robot train ppo --ckpt runs/pushcube/sta_tpo/final --task PushCube-v1 --out runs/ppo
    stare-robot train ppo ... --no-stage-aware            # plain PPO on the env reward
    stare-robot train ppo ... --shaping-off reach,contact # stage-toggle ablation
    stare-robot train ppo ... --eval-every 0              # no interval evaluation
    stare-robot train ppo ... --device cuda:0             # where the policy trains

The arguments, the update and the trainer state are simulator-free and live in the core
(:mod:`stare_robot.train.ppo`, whose docstring describes the method, seeds and out folder); this
module is the part that drives a simulator, so it sits in the sim layer.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tyro
from stare_robot.sim.evaluate import (
    DEFAULT_EXECUTE_STEPS,
    EvalInputError,
    check_policy_fits_env,
    default_max_steps,
    evaluate,
    policy_image_size,
    policy_obs_mode,
)
from stare_robot.sim.tasks import UnknownTaskError, get_task
from stare_robot.sim.vector_env import make_vector_env
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from stare_robot.policies import load_policy
from stare_robot.policies.protocol import SamplingSpec
from stare_robot.stages import get_family
from stare_robot.train.actor_critic import ActorCritic
from stare_robot.train.loop import (
    atomic_write_text,
    latest_checkpoint,
    load_trainer_state,
    save_checkpoint,
    save_final,
    seed_everything,
)
from stare_robot.train.ppo import (
    INTERVAL_EVAL_SEED_START,
    TRAIN_SEED_START,
    PPOArgs,
    PPOInputError,
    check_action_space,
    make_optimizer,
    parse_shaping_off,
    ppo_update,
    restore_trainer_state,
    trainer_state,
)
from stare_robot.train.ppo_rollout import collect_episodes, flatten_decisions

__all__ = ["PPOArgs", "PPOInputError", "main", "run_ppo"]


def check_inputs(args: PPOArgs):
    """(task spec, stage names, shaping mask) or a :class:`PPOInputError` naming the bad flag."""
    spec = get_task(args.task)
    stages = get_family(spec.stage_family).stage_names
    mask = parse_shaping_off(args.shaping_off, stages)
    if mask and not args.stage_aware:
        raise PPOInputError("--shaping-off only applies to STA-PPO; drop --no-stage-aware")
    if args.reward not in ("sparse", "dense"):
        raise PPOInputError(f"unknown --reward {args.reward!r}; valid: sparse, dense")
    for name in ("iterations", "episodes_per_iter", "num_envs", "epochs", "minibatch"):
        if getattr(args, name) < 1:
            flag = f"--{name.replace('_', '-')}"
            raise PPOInputError(f"{flag} must be >= 1, got {getattr(args, name)}")
    return spec, stages, mask


def evaluate_interval(policy, args: PPOArgs, spec, max_steps: int, execute_steps: int) -> float:
    """Deterministic success rate on ``--eval-episodes`` seeds from 40 000."""
    summary, _ = evaluate(
        policy, spec.name, args.eval_episodes, seed=INTERVAL_EVAL_SEED_START,
        max_steps=max_steps, execute_steps=execute_steps, progress=False,
        sim_backend=args.sim_backend,
    )
    return float(summary["success_rate"])


def run_ppo(args: PPOArgs) -> dict[str, Any]:
    """Train; returns {"final": path, "history": rows, "out": folder}."""
    spec, _, mask = check_inputs(args)
    # honoured here, not only by the CLI: callers in one process each (IPI, benchmarks) otherwise
    # get torch's default of one thread per core, and two such processes thrash 2 cores
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    policy = load_policy(args.ckpt, device=args.device)
    check_action_space(policy, spec.name)
    max_steps = default_max_steps(spec.name) if args.max_steps is None else args.max_steps
    execute_steps = DEFAULT_EXECUTE_STEPS if args.execute_steps is None else args.execute_steps
    seed_everything(args.seed)
    noisy_steps = args.noisy_steps or None
    # the likelihood covers the executed chunk steps where that is exact (see ActorCritic)
    exact = policy.prefix_scoring_is_exact(SamplingSpec(args.noise_std, noisy_steps))
    scored = execute_steps if exact else None
    ac = ActorCritic(policy, args.noise_std, noisy_steps, scored_steps=scored).to(args.device)
    optimizer = make_optimizer(ac, args)
    sampling_device = args.device if torch.device(args.device).type == "cuda" else "cpu"
    start, history, env_steps = 0, [], 0
    ckpt = latest_checkpoint(out) if args.resume else None
    if ckpt is not None:
        start, history, env_steps = restore_trainer_state(load_trainer_state(ckpt), ac, optimizer)
        print(f"[ppo] resumed from {ckpt} at iteration {start}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_config.json").write_text(
        json.dumps({"method": "sta_ppo" if args.stage_aware else "ppo", **asdict(args),
                    "max_steps": max_steps,
                    "execute_steps": execute_steps}, indent=2, default=str)
    )
    writer = SummaryWriter(str(out / "tb"))
    venv = make_vector_env(
        spec.name, args.num_envs, policy_obs_mode(policy), policy_image_size(policy),
        sim_backend=args.sim_backend, max_episode_steps=max_steps + 10,
    )
    bar = tqdm(total=args.iterations, initial=start, desc=f"ppo {spec.name}", unit="it",
               disable=args.quiet)
    try:
        first = venv.reset([0], [TRAIN_SEED_START])[0]
        check_policy_fits_env(policy, first.obs, spec.name)
        if start == 0 and args.eval_every > 0 and not history:
            history.append({"iteration": 0, "env_steps": 0, "eval_success":
                            evaluate_interval(policy, args, spec, max_steps, execute_steps)})
        for it in range(start, args.iterations):
            t0 = time.perf_counter()
            per_iter = args.episodes_per_iter
            seeds = TRAIN_SEED_START + it * per_iter + np.arange(per_iter)
            # the sampler draws its noise on the policy's device, with a generator of that device
            generator = torch.Generator(device=sampling_device).manual_seed(
                int(args.seed) * 1_000_003 + it)
            episodes = collect_episodes(
                venv, ac, spec.stage_family, seeds.tolist(), max_steps, execute_steps, generator,
                reward=args.reward, gamma=args.gamma, shaping=args.stage_aware,
                shaping_mask=mask, obj_half_size=spec.obj_half_size,
            )
            t_collect = time.perf_counter() - t0
            steps = int(sum(ep.length for ep in episodes))
            env_steps += steps
            data = flatten_decisions(episodes, args.gamma, args.gae_lambda)
            rng = np.random.default_rng([args.seed, it])
            stats = ppo_update(ac, optimizer, data, args, rng,
                               policy_on=it >= args.value_warmup_iters)
            row: dict[str, Any] = {
                "iteration": it + 1,
                "env_steps": env_steps,
                "episodes": len(episodes),
                "decisions": len(data["obs"]),
                "train_success": float(np.mean([ep.success for ep in episodes])),
                "return": float(np.mean([sum(ep.rewards) for ep in episodes])),
                "shaped_return": float(np.mean([sum(ep.shaped) for ep in episodes])),
                "mean_length": float(np.mean([ep.length for ep in episodes])),
                "policy_updated": it >= args.value_warmup_iters,
                **stats,
                "collect_s": t_collect,
                "update_s": time.perf_counter() - t0 - t_collect,
            }
            last = it + 1 == args.iterations
            if args.eval_every > 0 and ((it + 1) % args.eval_every == 0 or last):
                row["eval_success"] = evaluate_interval(policy, args, spec, max_steps,
                                                        execute_steps)
            history.append(row)
            atomic_write_text(out / "history.json", json.dumps(history, indent=1))
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "iteration":
                    writer.add_scalar(f"ppo/{k}", float(v), env_steps)
            bar.update(1)
            bar.set_postfix(success=f"{row['train_success']:.2f}", kl=f"{stats['approx_kl']:.3f}")
            if (it + 1) % args.save_every == 0 or it + 1 == args.iterations:
                state = trainer_state(it + 1, ac, optimizer, history, env_steps)
                save_checkpoint(out, it + 1, policy, state, args.keep_checkpoints)
                ac.value_head.save(out)
    finally:
        bar.close()
        writer.close()
        venv.close()
    final = save_final(out, policy)
    return {"final": final, "history": history, "out": out}


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(PPOArgs, args=argv, prog="stare-robot train ppo")
    try:
        summary = run_ppo(args)
    except (PPOInputError, UnknownTaskError, EvalInputError, FileNotFoundError, ValueError) as err:
        print(f"stare-robot train ppo: {err}", file=sys.stderr)
        return 2
    print(summary_line(args, summary["history"], summary["final"]))
    return 0


def summary_line(args: PPOArgs, history: list[dict[str, Any]], final: Path) -> str:
    """The closing line of ``train ppo``: no number is printed that was not measured."""
    last = history[-1]
    evals = [row["eval_success"] for row in history if "eval_success" in row]
    if args.eval_every <= 0:
        evaluation = "evaluation off (--eval-every 0)"
    elif evals:
        evaluation = f"eval success {evals[-1]:.2f}"
    else:
        evaluation = "not evaluated"
    train = f"train success {last['train_success']:.2f}, " if "train_success" in last else ""
    return (f"{'STA-PPO' if args.stage_aware else 'PPO'} {args.task}: {last['env_steps']} env "
            f"steps, {train}{evaluation} -> {final}")


if __name__ == "__main__":
    raise SystemExit(main())
