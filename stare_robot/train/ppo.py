"""PPO and STA-PPO, the simulator-free part: arguments, the clipped-PPO update, trainer state.

The driver that creates environments, collects and evaluates is :mod:`stare_robot.sim.ppo` (the
sim layer); this module is what it shares with anything else that trains by PPO.

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

Out folder: ``checkpoints/step_NNNNNN`` (policy + trainer state, no pickle, atomic; ``--resume``
continues from the newest), ``final/`` (a plain policy checkpoint: serve it, evaluate it),
``value_head.safetensors``, ``history.json`` (one row per iteration: env steps, success, returns,
losses, KL, clip fraction, evaluation success), ``tb/`` (TensorBoard).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stare_robot import keys
from stare_robot.train.losses_ppo import clipped_policy_loss, normalize_advantages, value_loss

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
    device: str = "cpu"
    """Where the policy and value head train (e.g. cuda:0); the simulator runs where it runs."""
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


def check_action_space(policy, task: str) -> None:
    """The checkpoint must act in the env's 7-D end-effector-delta space."""
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
    n = len(data["obs"])
    device = next(ac.value_head.parameters()).device  # where the losses are computed

    def tensor(name: str, dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
        return torch.as_tensor(data[name], dtype=dtype, device=device)

    records = tensor("records", dtype=None)
    old_logp, old_values, returns = tensor("log_probs"), tensor("values"), tensor("returns")
    advantages = normalize_advantages(tensor("advantages"))
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


def trainer_state(it, ac, optimizer, history, env_steps) -> dict[str, Any]:
    """What ``checkpoints/step_N`` holds beside the policy (see :mod:`stare_robot.train.loop`)."""
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




def restore_trainer_state(state: dict[str, Any], ac, optimizer) -> tuple[int, list, int]:
    """Load :func:`trainer_state`'s ``state`` into ``ac`` and ``optimizer`` and the random streams;
    returns (iteration, history, env_steps)."""
    ac.policy.load_state_dict(state["model"])
    ac.value_head.load_state_dict(state["value_head"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    return state["step"], state["history"], state["env_steps"]


def make_optimizer(ac, args: PPOArgs) -> torch.optim.Optimizer:
    """AdamW over the trainable policy parameters (``lr``) and the value head (``value_lr``)."""
    return torch.optim.AdamW(
        [
            {"params": [p for p in ac.policy.parameters() if p.requires_grad], "lr": args.lr},
            {"params": list(ac.value_head.parameters()), "lr": args.value_lr},
        ],
        weight_decay=0.0,
    )
