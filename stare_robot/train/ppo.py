"""Online fine-tuning in ManiSkill3: PPO, and STA-PPO with the stage engine's reward shaping.

    stare-robot train ppo --ckpt runs/pushcube/sta_tpo/final --task PushCube-v1 --out runs/ppo
    stare-robot train ppo ... --no-stage-aware            # plain PPO on the env reward
    stare-robot train ppo ... --shaping-off reach,contact # stage-toggle ablation

Each iteration collects ``--episodes-per-iter`` whole episodes with the sampling policy on
``--num-envs`` environments (:mod:`stare_robot.sim.vector_env`; worker processes on the CPU,
ManiSkill's batched GPU simulation with CUDA), computes GAE advantages over the policy's
decisions (:mod:`.losses_ppo`), and runs ``--epochs`` passes of clipped-PPO minibatch updates,
stopping the iteration's updates at the first minibatch whose approximate KL to the rollout
policy exceeds 1.5 x ``--target-kl``. A decision's likelihood is that of the chunk steps it
executes. The value head sits on the policy's prefix (:mod:`.actor_critic`) with its own
learning rate.

Rewards: ``--reward sparse`` (1 on the success step, the episode ends there) or ``dense``
(ManiSkill's normalised dense reward). STA-PPO (the default, ``--stage-aware``) adds
gamma * Phi(s') - Phi(s) from the online stage tracker (:mod:`.ppo_rollout`).

Training episodes use seeds 50 000 + i (demos 0.., evaluation 10 000.., TPO rollouts 20 000..);
the deterministic evaluation every ``--eval-every`` iterations uses ``--eval-episodes`` seeds from
40 000, so the final held-out evaluation (10 000..) is never looked at during training.

Out folder: ``checkpoints/step_NNNNNN`` (policy + trainer_state.pt, atomic; ``--resume``
continues from the newest), ``final/`` (a plain policy checkpoint: serve it, evaluate it),
``value_head.safetensors``, ``history.json`` (one row per iteration: env steps, success, returns,
losses, KL, clip fraction, evaluation success), ``tb/`` (TensorBoard).
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

TRAIN_SEED_START = 50_000
INTERVAL_EVAL_SEED_START = 40_000
# The flow head's exploration noise and the policy lr are set together: a mean shift of the
# executed-action Gaussian costs KL ~ shift^2 / sigma^2. At sigma 0.1 (the TPO chain's) the KL stop
# allowed so small a shift per iteration that 12 iterations left PushCube's deterministic policy
# where it started (benchmarks/results/ppo_learning_curves.json; at lr 1e-5 one Adam step crossed
# the stop). At sigma 0.3 and lr 3e-6 an iteration makes tens of updates at approx KL <= 0.025 and
# the evaluation success rises (ppo_learning_curves_sigma03*.json).
DEFAULT_LR = 3e-6
DEFAULT_NOISE_STD = 0.3  # in normalised action units (data std = 1)
KL_STOP_FACTOR = 1.5  # stop at approx KL > 1.5 target_kl, as Stable-Baselines3 does
DEFAULT_VALUE_LR = 3e-3


class PPOInputError(ValueError):
    """The arguments do not fit together (task, checkpoint, stages)."""


@dataclass
class PPOArgs:
    """PPO / STA-PPO fine-tuning of a policy checkpoint in a ManiSkill3 task."""

    ckpt: Path
    """Policy checkpoint to start from (SFT or TPO final/)."""
    task: str
    """Task, e.g. PushCube-v1."""
    out: Path
    """Output folder (checkpoints, final/, history.json, tb/)."""
    stage_aware: bool = True
    """STA-PPO: shape the reward with the stage potentials (--no-stage-aware: plain PPO)."""
    shaping_off: str = ""
    """Comma-separated stages whose potential is switched off (the stage-toggle ablation)."""
    reward: str = "sparse"
    """Environment reward: sparse (success) or dense (ManiSkill's normalised dense reward)."""
    iterations: int = 10
    """Rollout + update rounds."""
    episodes_per_iter: int = 16
    """Whole episodes collected per iteration."""
    num_envs: int = 2
    """Environments stepped in parallel (CPU: one worker process each)."""
    epochs: int = 2
    """Passes over each iteration's decisions."""
    minibatch: int = 32
    """Decisions per gradient step."""
    lr: float = DEFAULT_LR
    """Policy learning rate."""
    value_lr: float = DEFAULT_VALUE_LR
    """Value-head learning rate."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    """PPO ratio clip epsilon."""
    value_clip: float | None = None
    """Clip the value update around the rollout's values (None: off)."""
    target_kl: float = 0.05
    """Stop an iteration's updates at the first minibatch whose approximate KL to the collecting
    policy exceeds 1.5x this (before its step)."""
    entropy_coef: float = 0.0
    """Entropy bonus (token head only; the flow chain's entropy is fixed)."""
    grad_clip: float = 1.0
    value_warmup_iters: int = 1
    """First iterations fit only the value head (it starts from random weights)."""
    noise_std: float = DEFAULT_NOISE_STD
    """sigma of the flow head's noisy sampler (exploration), in normalised action units."""
    noisy_steps: int = 1
    """Flow head: inject noise only in the last N denoising steps, starting from predict()'s zero
    noise, so the deterministic policy is the sampler's mean (0: every step from random noise,
    the TPO sampler)."""
    execute_steps: int | None = None
    """Actions executed per chunk (default: evaluation's)."""
    max_steps: int | None = None
    """Episode horizon (default: the task's evaluation horizon)."""
    eval_every: int = 5
    """Deterministic evaluation every N iterations (and before the first); 0 = never."""
    eval_episodes: int = 20
    save_every: int = 1
    """Checkpoint every N iterations."""
    keep_checkpoints: int = 2
    seed: int = 0
    resume: bool = False
    sim_backend: str = "auto"
    threads: int = 1
    quiet: bool = False


def parse_shaping_off(text: str, stage_names: tuple[str, ...]) -> dict[str, bool]:
    """"reach,contact" -> {"reach": False, "contact": False}; unknown names are an error."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in stage_names]
    if unknown:
        raise PPOInputError(
            f"--shaping-off names stage(s) {unknown} that the task's family does not have; "
            f"its stages are {list(stage_names)}"
        )
    return {n: False for n in names}


def _check_inputs(args: PPOArgs):
    from stare_robot.sim.tasks import get_task

    from stare_robot.stages import get_family

    spec = get_task(args.task)
    stages = get_family(spec.stage_family).stage_names
    mask = parse_shaping_off(args.shaping_off, stages)
    if mask and not args.stage_aware:
        raise PPOInputError("--shaping-off only applies to STA-PPO; drop --no-stage-aware")
    if args.reward not in ("sparse", "dense"):
        raise PPOInputError(f"unknown --reward {args.reward!r}; valid: sparse, dense")
    for name in ("iterations", "episodes_per_iter", "num_envs", "epochs", "minibatch"):
        if getattr(args, name) < 1:
            raise PPOInputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return spec, stages, mask


def check_action_space(policy, task: str) -> None:
    """The checkpoint must act in the env's 7-D end-effector-delta space."""
    from stare_robot import keys

    meta = policy.metadata
    if meta.action_space != keys.ACTION_SPACE_EE_DELTA or meta.action_dim != keys.ACTION_DIM:
        raise PPOInputError(
            f"checkpoint acts in {meta.action_space!r} with {meta.action_dim}-D actions; {task} "
            f"is driven in {keys.ACTION_SPACE_EE_DELTA!r} with {keys.ACTION_DIM}-D actions"
        )


def ppo_update(
    ac, optimizer, data: dict[str, Any], args: PPOArgs, rng: np.random.Generator, policy_on: bool
) -> dict[str, float]:
    """``args.epochs`` passes of minibatch updates over one iteration's decisions; returns the
    means of the monitored values, ``epochs`` and ``updates`` (how many ran before the KL stop)
    and ``kl_stopped``."""
    from stare_robot.train.losses_ppo import clipped_policy_loss, normalize_advantages, value_loss

    n = len(data["obs"])
    records = torch.as_tensor(data["records"])
    old_logp = torch.as_tensor(data["log_probs"], dtype=torch.float32)
    old_values = torch.as_tensor(data["values"], dtype=torch.float32)
    returns = torch.as_tensor(data["returns"], dtype=torch.float32)
    advantages = normalize_advantages(torch.as_tensor(data["advantages"], dtype=torch.float32))
    policy_params = [p for p in ac.policy.parameters() if p.requires_grad]
    value_params = list(ac.value_head.parameters())
    rows: list[dict[str, float]] = []
    epochs_run, kl_stopped = 0, False
    ac.eval()  # no dropout: before the first step the ratio is exactly 1
    for _ in range(args.epochs):
        order = rng.permutation(n)
        for start in range(0, n, args.minibatch):
            idx = order[start : start + args.minibatch]
            batch = ac.policy.processor.collate([data["obs"][i] for i in idx])
            logp, values, entropy = ac.evaluate(batch, records[idx])
            pg_loss, stats = clipped_policy_loss(logp, old_logp[idx], advantages[idx], args.clip)
            if policy_on and float(stats["approx_kl"]) > KL_STOP_FACTOR * args.target_kl:
                # this minibatch already sees a policy too far from the one that collected the
                # data: stop before the step that would move it further (a per-epoch check lets
                # a whole epoch of steps run away first)
                kl_stopped = True
                break
            v_loss = value_loss(values, returns[idx], old_values[idx], args.value_clip)
            loss = v_loss
            if policy_on:
                loss = loss + pg_loss
                if entropy is not None and args.entropy_coef:
                    loss = loss - args.entropy_coef * entropy.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(policy_params, args.grad_clip)
                torch.nn.utils.clip_grad_norm_(value_params, args.grad_clip)
            optimizer.step()
            row = {k: float(v) for k, v in stats.items()}
            row.update(policy_loss=float(pg_loss.detach()), value_loss=float(v_loss.detach()))
            if entropy is not None:
                row["entropy"] = float(entropy.detach().mean())
            rows.append(row)
        epochs_run += 1
        if kl_stopped:
            break
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}
    out.update(epochs=epochs_run, updates=len(rows), kl_stopped=kl_stopped)
    return out


def _evaluate(policy, args: PPOArgs, spec, max_steps: int, execute_steps: int) -> float:
    from stare_robot.sim.evaluate import evaluate

    summary, _ = evaluate(
        policy, spec.name, args.eval_episodes, seed=INTERVAL_EVAL_SEED_START,
        max_steps=max_steps, execute_steps=execute_steps, progress=False,
        sim_backend=args.sim_backend,
    )
    return float(summary["success_rate"])


def _trainer_state(it, ac, optimizer, history, env_steps) -> dict[str, Any]:
    return {
        "step": it,
        "model": ac.policy.state_dict(),
        "value_head": ac.value_head.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
        "env_steps": env_steps,
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
    }


def run_ppo(args: PPOArgs) -> dict[str, Any]:
    """Train; returns {"final": path, "history": rows, "out": folder}."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    from stare_robot.policies import load_policy
    from stare_robot.policies.protocol import SamplingSpec
    from stare_robot.sim.evaluate import (
        DEFAULT_EXECUTE_STEPS,
        check_policy_fits_env,
        default_max_steps,
        policy_image_size,
        policy_obs_mode,
    )
    from stare_robot.sim.vector_env import make_vector_env
    from stare_robot.train.actor_critic import ActorCritic
    from stare_robot.train.loop import (
        TRAINER_STATE,
        atomic_write_text,
        latest_checkpoint,
        save_checkpoint,
        save_final,
        seed_everything,
    )
    from stare_robot.train.ppo_rollout import collect_episodes, flatten_decisions

    spec, _, mask = _check_inputs(args)
    # honoured here, not only by the CLI: callers in one process each (IPI, benchmarks) otherwise
    # get torch's default of one thread per core, and two such processes thrash 2 cores
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    policy = load_policy(args.ckpt)
    check_action_space(policy, spec.name)
    max_steps = default_max_steps(spec.name) if args.max_steps is None else args.max_steps
    execute_steps = DEFAULT_EXECUTE_STEPS if args.execute_steps is None else args.execute_steps
    seed_everything(args.seed)
    noisy_steps = args.noisy_steps or None
    # the likelihood covers the executed chunk steps where that is exact (see ActorCritic)
    exact = policy.prefix_scoring_is_exact(SamplingSpec(args.noise_std, noisy_steps))
    scored = execute_steps if exact else None
    ac = ActorCritic(policy, args.noise_std, noisy_steps, scored_steps=scored)
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in policy.parameters() if p.requires_grad], "lr": args.lr},
            {"params": list(ac.value_head.parameters()), "lr": args.value_lr},
        ],
        weight_decay=0.0,
    )
    start, history, env_steps = 0, [], 0
    ckpt = latest_checkpoint(out) if args.resume else None
    if ckpt is not None:
        state = torch.load(ckpt / TRAINER_STATE, weights_only=False)
        policy.load_state_dict(state["model"])
        ac.value_head.load_state_dict(state["value_head"])
        optimizer.load_state_dict(state["optimizer"])
        start, history, env_steps = state["step"], state["history"], state["env_steps"]
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
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
            history.append({"iteration": 0, "env_steps": 0,
                            "eval_success": _evaluate(policy, args, spec, max_steps, execute_steps)})
        for it in range(start, args.iterations):
            t0 = time.perf_counter()
            seeds = TRAIN_SEED_START + it * args.episodes_per_iter + np.arange(args.episodes_per_iter)
            generator = torch.Generator().manual_seed(int(args.seed) * 1_000_003 + it)
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
            stats = ppo_update(ac, optimizer, data, args, rng, policy_on=it >= args.value_warmup_iters)
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
            if args.eval_every > 0 and ((it + 1) % args.eval_every == 0 or it + 1 == args.iterations):
                row["eval_success"] = _evaluate(policy, args, spec, max_steps, execute_steps)
            history.append(row)
            atomic_write_text(out / "history.json", json.dumps(history, indent=1))
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "iteration":
                    writer.add_scalar(f"ppo/{k}", float(v), env_steps)
            bar.update(1)
            bar.set_postfix(success=f"{row['train_success']:.2f}", kl=f"{stats['approx_kl']:.3f}")
            if (it + 1) % args.save_every == 0 or it + 1 == args.iterations:
                save_checkpoint(out, it + 1, policy, _trainer_state(it + 1, ac, optimizer, history,
                                env_steps), args.keep_checkpoints)
                ac.value_head.save(out)
    finally:
        bar.close()
        writer.close()
        venv.close()
    final = save_final(out, policy)
    return {"final": final, "history": history, "out": out}


def main(argv: list[str] | None = None) -> int:
    import tyro

    from stare_robot.sim.evaluate import EvalInputError
    from stare_robot.sim.tasks import UnknownTaskError

    args = tyro.cli(PPOArgs, args=argv, prog="stare-robot train ppo")
    try:
        summary = run_ppo(args)
    except (PPOInputError, UnknownTaskError, EvalInputError, FileNotFoundError, ValueError) as err:
        print(f"stare-robot train ppo: {err}", file=sys.stderr)
        return 2
    last = summary["history"][-1]
    print(
        f"{'STA-PPO' if args.stage_aware else 'PPO'} {args.task}: {last['env_steps']} env steps, "
        f"train success {last.get('train_success', float('nan')):.2f}, "
        f"eval success {last.get('eval_success', float('nan')):.2f} -> {summary['final']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
