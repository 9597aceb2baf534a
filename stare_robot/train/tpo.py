"""Preference fine-tuning: plain TPO (GRAPE) and STA-TPO (stage-aware) from an SFT checkpoint.

    stare-robot rollouts --ckpt runs/sft/final --task PushCube-v1 --num 40 --out data/roll.zarr
    stare-robot pairs data/roll.zarr --out data/pairs.json
    stare-robot train tpo --ckpt runs/sft/final --pairs data/pairs.json --out runs/sta_tpo
    stare-robot train tpo --ckpt runs/sft/final --pairs data/pairs.json --out runs/tpo \\
        --no-stage-aware

The trainable policy starts from ``--ckpt``; the reference pi_ref (``--ref``, default the same
checkpoint) is frozen: its log-likelihoods are computed once, without gradients, before training,
and the reference network is then dropped, so no gradient can reach it.

Per-step log-likelihood (the policy's ``log_prob`` of sampling records, the training protocol of
:mod:`stare_robot.policies.protocol`): a rollout queries the policy every few steps; each executed
step takes the log-likelihood of the record of the query that produced it (``policy/query_step``,
``policy/sample``): for pi0, the chunk's exact log-prob for the token head, the noisy denoising
chain's log-density for the flow head. Episodes without sampler records (demonstrations,
teleoperated robot episodes) use their recorded actions cut into chunks from every
``chunk_size``-th step (``records_from_actions``) - exact for the token head, impossible for the
flow head (no chain), which is a clear error. The losses themselves are :mod:`.losses_tpo`.

Keeping a good policy good (measured in benchmarks/tpo_comparison.py): the loss adds a success
anchor (``--anchor``, :func:`~stare_robot.train.losses_tpo.success_anchor`); with held-out pairs
(``--eval-pairs``) a checkpoint is scored every ``--select-every`` steps and final/ is the best of
them *or the starting weights* (``selected_step`` 0); with fewer than ``--min-pairs`` training
pairs nothing is trained and final/ is the starting checkpoint.

Logged per step (TensorBoard ``train/*`` and history.json): ``loss``, ``pref_loss``,
``anchor_loss``, ``pref_accuracy`` (pairs with a positive margin), ``margin`` and, stage-aware,
``margin_<stage>`` (mean over the pairs where the stage counts). ``preference_eval.json`` holds
the accuracy on ``--eval-pairs`` (default: the training pairs) before and after training, the
selected step and every candidate's score.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tyro
from torch import nn
from tqdm.auto import tqdm

from stare_robot import keys
from stare_robot.data.errors import StoreError
from stare_robot.data.store import EpisodeStore
from stare_robot.policies import load_policy
from stare_robot.policies.protocol import DEFAULT_NOISE_STD, SamplingSpec
from stare_robot.train.loop import (
    LoopConfig,
    load_trainer_state,
    save_final,
    seed_everything,
    train,
)
from stare_robot.train.losses_tpo import (
    preference_accuracy,
    sta_tpo_loss,
    stage_log_ratio,
    success_anchor,
    tpo_loss,
    trajectory_log_ratio,
)
from stare_robot.train.preferences import (
    PreferenceError,
    PreferencePair,
    load_pairs,
    make_pairs_file,
)

DEFAULT_STEPS = 60
DEFAULT_LR = 1e-5  # tpo_comparison: 5e-5 (60 steps) degraded PushCube SFT, 1e-5 did not
DEFAULT_BETA = 0.1
DEFAULT_LAMBDA = 1.0
DEFAULT_PAIRS_PER_STEP = 2
DEFAULT_ANCHOR = 0.1  # weight of the success anchor (losses_tpo.success_anchor)
DEFAULT_SELECT_EVERY = 20  # steps between candidate checkpoints scored on the held-out pairs
DEFAULT_MIN_PAIRS = 4  # fewer training pairs than this: keep the starting weights
MAX_POINTS_PER_FORWARD = 64  # decision points per forward pass (bounds activation memory)


class ReferenceMismatch(ValueError):
    """The reference checkpoint is not the trainable policy's architecture."""


def check_same_architecture(policy, ref) -> None:
    """Raise :class:`ReferenceMismatch` naming the first setting on which the two differ."""
    a, b = policy.config.to_dict(), ref.config.to_dict()
    fields = (
        "type",
        "obs_mode",
        "state_dim",
        "env_state_dim",
        "action_dim",
        "chunk_size",
        "num_inference_steps",
        "num_bins",
        "cameras",
        "image_size",
        "use_stake",
    )
    for name in fields:
        if a.get(name) != b.get(name):
            raise ReferenceMismatch(
                f"the reference checkpoint differs from the trained one in {name!r}: "
                f"{b.get(name)!r} vs {a.get(name)!r}; pi_ref must be the same architecture (the "
                "SFT checkpoint TPO starts from)"
            )
    shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    for k, v in policy.state_dict().items():
        if shapes.get(k) != tuple(v.shape):
            raise ReferenceMismatch(
                f"the reference checkpoint's weight {k!r} has shape {shapes.get(k)}, the trained "
                f"policy's {tuple(v.shape)}; pi_ref must be the same architecture"
            )


# ------------------------------------------------------------------------------ episode data


@dataclass
class EpisodeData:
    """One episode's decision points (queries) and per-step bookkeeping."""

    obs: dict[str, torch.Tensor]  # {input key: (Q, ...)} observations at the decision points
    instruction: str
    samples: torch.Tensor  # (Q, ...) likelihood records of the decision points
    is_pad: torch.Tensor | None  # (Q, chunk) bool, demo chunks past the episode end
    step_query: torch.Tensor  # (T,) long decision point that produced each step
    stage: torch.Tensor  # (T,) long stage of each step
    furthest: int
    costs: torch.Tensor  # (K,) stage costs, NaN where not entered

    @property
    def num_queries(self) -> int:
        return int(self.samples.shape[0])


def load_episode(
    policy, info, stores: dict[str, Any], noise_std: float | None = None
) -> EpisodeData:
    """Read what the likelihoods need from the store (see the module docstring)."""
    store = stores.setdefault(info.store, EpisodeStore.open(info.store))
    reader = store[info.episode]
    input_keys = list(policy.metadata.inputs)
    missing = [k for k in input_keys + [keys.STAGE] if k not in reader]
    if missing:
        raise PreferenceError(
            f"episode {info.episode} of {info.store} lacks {missing}, which the policy "
            f"({policy.config.type}) or the stage-aware loss needs"
        )
    stage = np.asarray(reader[keys.STAGE][:], np.int64)
    length = len(stage)
    recorded_std = reader.attrs.get(keys.ATTR_CHAIN_NOISE_STD)
    mismatch = None not in (noise_std, recorded_std) and not np.isclose(recorded_std, noise_std)
    if policy.likelihood_uses_noise_std and mismatch:
        raise PreferenceError(
            f"episode {info.episode} of {info.store} was sampled with chain noise "
            f"{recorded_std}, the run scores chains with {noise_std}; collect the rollouts "
            "with one --noise-std (or pass the same --noise-std to training)"
        )
    if keys.POLICY_SAMPLE in reader:
        query_step = np.asarray(reader[keys.POLICY_QUERY_STEP][:], np.int64)
        points = np.unique(query_step)
        samples = torch.from_numpy(
            np.asarray(reader[keys.POLICY_SAMPLE].oindex[points], np.float32)
        )
        want = tuple(policy.record_shape)
        if tuple(samples.shape[1:]) != want:
            raise PreferenceError(
                f"episode {info.episode} of {info.store} holds sampler records of shape "
                f"{tuple(samples.shape[1:])}, the policy needs {want}; it was collected by a "
                f"{reader.attrs.get(keys.ATTR_POLICY_TYPE)!r} policy with other settings"
            )
        is_pad = None
        step_query = np.searchsorted(points, query_step)
    else:  # demonstration / teleoperation: the recorded actions, chunk by chunk
        chunk = policy.metadata.chunk_size
        points = np.arange(0, length, chunk)
        actions = np.asarray(reader[keys.ACTION][:], np.float32)
        padded = np.concatenate([actions, np.repeat(actions[-1:], chunk, axis=0)])
        windows = np.stack([padded[p : p + chunk] for p in points])
        samples = policy.records_from_actions(windows)
        if samples is None:
            raise PreferenceError(
                f"episode {info.episode} of {info.store} has no sampler records "
                f"({keys.POLICY_SAMPLE!r}); a {policy.config.type!r} policy's likelihood needs "
                "the sampler's own record (the flow head's: the denoising chain recorded at "
                "collection, stare-robot rollouts), so demonstrations can only be used with a "
                "policy that scores plain actions (e.g. pi0_tokens)"
            )
        is_pad = torch.from_numpy((points[:, None] + np.arange(chunk)) >= length)
        step_query = np.arange(length) // chunk
    obs = {k: torch.from_numpy(np.asarray(reader[k].oindex[points])) for k in input_keys}
    return EpisodeData(
        obs=obs,
        instruction=str(reader.attrs.get(keys.ATTR_INSTRUCTION, info.instruction)),
        samples=samples,
        is_pad=is_pad,
        step_query=torch.from_numpy(step_query),
        stage=torch.from_numpy(stage),
        furthest=int(info.furthest_stage),
        costs=torch.tensor(
            [np.nan if c is None else c for c in info.stage_costs], dtype=torch.float32
        ),
    )


def episode_log_probs(policy, episodes: list[EpisodeData], noise_std: float) -> list[torch.Tensor]:
    """Per-step log-likelihoods (T_e,) of each episode under ``policy`` (differentiable)."""
    spec = SamplingSpec(noise_std=noise_std)  # rollouts sample with noise at every step
    obs_keys = list(episodes[0].obs)
    flat_obs = {k: torch.cat([e.obs[k] for e in episodes]) for k in obs_keys}
    instructions = [e.instruction for e in episodes for _ in range(e.num_queries)]
    samples = torch.cat([e.samples for e in episodes])
    pads = None
    if any(e.is_pad is not None for e in episodes):
        pads = torch.cat(
            [
                e.is_pad
                if e.is_pad is not None
                else torch.zeros(e.num_queries, policy.metadata.chunk_size, dtype=torch.bool)
                for e in episodes
            ]
        )
    values = []
    for start in range(0, samples.shape[0], MAX_POINTS_PER_FORWARD):
        part = slice(start, start + MAX_POINTS_PER_FORWARD)
        batch: dict[str, Any] = {k: v[part] for k, v in flat_obs.items()}
        batch[keys.INSTRUCTION] = instructions[part]
        if pads is not None:
            batch[keys.ACTION_IS_PAD] = pads[part]
        values.append(policy.log_prob(batch, samples[part], spec))
    per_query = torch.cat(values)
    out, offset = [], 0
    for e in episodes:
        out.append(per_query[offset + e.step_query])
        offset += e.num_queries
    return out


def _pad(rows: list[torch.Tensor], fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (T_i,) -> (N, T_max) padded, (N, T_max) bool valid."""
    length = max(int(r.shape[0]) for r in rows)
    out = torch.full((len(rows), length), fill, dtype=rows[0].dtype)
    valid = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
        valid[i, : r.shape[0]] = True
    return out, valid


# ---------------------------------------------------------------------------------- objective


class PreferenceObjective(nn.Module):
    """The loop's ``policy``: ``training_losses({"pair_index": (B,)})`` -> TPO / STA-TPO losses.

    Holds the trainable policy (its only parameters) and, as plain tensors, the reference's
    per-step log-likelihoods of every episode."""

    def __init__(
        self,
        policy,
        ref,
        pairs: list[PreferencePair],
        stage_aware: bool,
        beta: float,
        lam: float,
        noise_std: float,
        progress: bool = False,
        anchor: float = 0.0,
    ):
        super().__init__()
        check_same_architecture(policy, ref)
        families = {p.chosen.stage_family for p in pairs}
        if len(families) != 1:
            raise PreferenceError(
                f"the pairs mix stage families {sorted(families)}; train one family per run"
            )
        self.policy = policy
        self.stage_aware, self.beta, self.lam, self.noise_std = stage_aware, beta, lam, noise_std
        self.anchor = anchor
        self.stage_names = list(pairs[0].chosen.stage_names)
        self.pairs = pairs
        stores: dict[str, Any] = {}
        self.index: dict[tuple[str, str], int] = {}
        self.episodes: list[EpisodeData] = []
        for pair in pairs:
            for side in (pair.chosen, pair.rejected):
                key = (side.store, side.episode)
                if key not in self.index:
                    self.index[key] = len(self.episodes)
                    self.episodes.append(load_episode(policy, side, stores, noise_std))
        # per pair, the positions of its chosen and rejected episodes in self.episodes
        self.chosen_at = [self.index[(p.chosen.store, p.chosen.episode)] for p in pairs]
        self.rejected_at = [self.index[(p.rejected.store, p.rejected.episode)] for p in pairs]
        ref.eval()
        self.ref_logp: list[torch.Tensor] = []
        with torch.no_grad():
            for e in tqdm(self.episodes, desc="reference log-probs", disable=not progress):
                self.ref_logp.append(episode_log_probs(ref, [e], noise_std)[0].detach())

    def save_pretrained(self, directory):
        return self.policy.save_pretrained(directory)

    def pair_losses(self, pair_index: torch.Tensor):
        """:class:`~stare_robot.train.losses_tpo.PreferenceLoss` of the chosen pairs."""
        pos = [self.chosen_at[i] for i in pair_index.tolist()]
        neg = [self.rejected_at[i] for i in pair_index.tolist()]
        unique = sorted(set(pos + neg))
        logps = episode_log_probs(self.policy, [self.episodes[e] for e in unique], self.noise_std)
        where = {e: i for i, e in enumerate(unique)}

        def side(eps: list[int]):
            logp, valid = _pad([logps[where[e]] for e in eps])
            ref, _ = _pad([self.ref_logp[e] for e in eps])
            stage, _ = _pad([self.episodes[e].stage for e in eps], fill=0)
            return logp, ref, stage.long(), valid

        lp_pos, ref_pos, st_pos, v_pos = side(pos)
        lp_neg, ref_neg, st_neg, v_neg = side(neg)
        traj_pos = trajectory_log_ratio(lp_pos, ref_pos, v_pos)
        chosen_success = torch.tensor([self.pairs[i].chosen.success for i in pair_index.tolist()])
        anchor = success_anchor(traj_pos, chosen_success)
        if not self.stage_aware:
            result = tpo_loss(traj_pos, trajectory_log_ratio(lp_neg, ref_neg, v_neg), self.beta)
        else:
            k = len(self.stage_names)
            q_pos, n_pos = stage_log_ratio(lp_pos, ref_pos, st_pos, v_pos, k)
            q_neg, n_neg = stage_log_ratio(lp_neg, ref_neg, st_neg, v_neg, k)
            result = sta_tpo_loss(
                q_pos,
                q_neg,
                torch.stack([self.episodes[e].costs for e in pos]),
                torch.stack([self.episodes[e].costs for e in neg]),
                torch.tensor([self.episodes[e].furthest for e in pos]),
                torch.tensor([self.episodes[e].furthest for e in neg]),
                self.beta,
                self.lam,
                n_pos,
                n_neg,
            )
        result.anchor = anchor
        return result

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        result = self.pair_losses(torch.as_tensor(batch["pair_index"]))
        out = {
            "loss": result.loss + self.anchor * result.anchor if self.anchor else result.loss,
            "pref_loss": result.loss.detach(),
            "anchor_loss": result.anchor.detach(),
            "pref_accuracy": result.accuracy.detach(),
            "margin": result.margin.mean().detach(),
        }
        if result.stage_margin is not None:
            gate = result.gate.float()
            per_stage = (result.stage_margin.detach() * gate).sum(0) / gate.sum(0).clamp(min=1)
            for name, value in zip(self.stage_names, per_stage):
                out[f"margin_{name}"] = value
        return out

    @torch.no_grad()
    def accuracy(self, chunk: int = 4) -> dict[str, float]:
        """Preference accuracy and mean margin over this objective's pairs, by the plain
        trajectory log-ratio (the same yardstick for TPO and STA-TPO runs). Each episode's
        log-likelihood is computed once, ``chunk`` episodes per forward."""
        was_training = self.policy.training
        self.policy.eval()
        try:
            q = []
            for start in range(0, len(self.episodes), chunk):
                part = self.episodes[start : start + chunk]
                for i, logp in enumerate(episode_log_probs(self.policy, part, self.noise_std)):
                    q.append((logp - self.ref_logp[start + i]).mean())
        finally:
            self.policy.train(was_training)
        q = torch.stack(q)
        m = self.beta * (q[self.chosen_at] - q[self.rejected_at])
        return {
            "pairs": int(m.numel()),
            "accuracy": float(preference_accuracy(m)),
            "mean_margin": float(m.mean()),
        }


def make_evaluator(
    policy, ref, pairs, noise_std: float, progress: bool = False
) -> PreferenceObjective:
    """An objective over (held-out) ``pairs`` sharing ``policy`` (used only for evaluation)."""
    return PreferenceObjective(
        policy,
        ref,
        pairs,
        stage_aware=False,
        beta=1.0,
        lam=0.0,
        noise_std=noise_std,
        progress=progress,
    )


# ------------------------------------------------------------------------------------ trainer


def pair_batch_indices(step: int, seed: int, num_pairs: int, per_step: int) -> np.ndarray:
    """Pairs of ``step``: a pure function of (seed, step), so resume is exact."""
    rng = np.random.default_rng([seed, step])
    return rng.choice(num_pairs, size=min(per_step, num_pairs), replace=False)


@dataclass
class TPOArgs:
    """Preference fine-tuning (TPO / STA-TPO) of a policy checkpoint on stored preference pairs."""

    ckpt: Path
    """Starting checkpoint (the SFT policy); also the frozen reference unless --ref is given."""
    pairs: Path
    """Pairs JSON from `stare-robot pairs` (or a rollout store: pairs are built into out/)."""
    out: Path
    """Run folder: checkpoints/, final/, tb/, history.json, preference_eval.json."""
    ref: Path | None = None
    """Reference checkpoint pi_ref (default: --ckpt)."""
    eval_pairs: Path | None = None
    """Held-out pairs for the before/after preference accuracy (default: the training pairs)."""
    stage_aware: bool = True
    """STA-TPO (per-stage, cost penalty, gating); --no-stage-aware is plain TPO."""
    beta: float = DEFAULT_BETA
    lam: float = DEFAULT_LAMBDA
    """lambda, weight of the stage cost in q_hat = q - lambda * cost (stage-aware only)."""
    steps: int = DEFAULT_STEPS
    pairs_per_step: int = DEFAULT_PAIRS_PER_STEP
    lr: float = DEFAULT_LR
    anchor: float = DEFAULT_ANCHOR
    """Weight of the success anchor: -mean log-ratio of the successful preferred trajectories
    (0 turns it off)."""
    select_every: int = DEFAULT_SELECT_EVERY
    """With --eval-pairs: score a checkpoint every this many steps (and the starting weights) on
    the held-out pairs and keep the best as final/ (0: keep the last)."""
    min_pairs: int = DEFAULT_MIN_PAIRS
    """Fewer training pairs than this: no training, final/ is the starting checkpoint."""
    warmup_steps: int = 5
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    save_every: int = 20
    log_every: int = 5
    resume: bool = False
    noise_std: float | None = None
    """Flow head chain noise sigma (default: what the rollouts were collected with)."""
    threads: int = 1
    device: str = "cpu"
    """Where the policy and the reference train (e.g. cuda:0)."""
    quiet: bool = False


def _noise_std(pairs: list[PreferencePair], override: float | None) -> float:
    if override is not None:
        return float(override)
    first = pairs[0].chosen
    attrs = EpisodeStore.open(first.store)[first.episode].attrs
    return float(attrs.get(keys.ATTR_CHAIN_NOISE_STD, DEFAULT_NOISE_STD))


def keep_starting_weights(args: TPOArgs, reason: str) -> dict[str, Any]:
    """final/ = the starting checkpoint, with the reason in preference_eval.json."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    final = save_final(out, load_policy(args.ckpt))
    evaluation = {
        "eval_before": None,
        "eval_after": None,
        "held_out": args.eval_pairs is not None,
        "kept_reference": True,
        "selected_step": 0,
        "reason": reason,
    }
    (out / "preference_eval.json").write_text(json.dumps(evaluation, indent=2))
    return {"history": [], "final": final, "world_size": 1, **evaluation, "out": out}


def select_checkpoint(
    objective: PreferenceObjective, out: Path, start_ckpt: Path, before: dict[str, float]
) -> tuple[int, dict[str, float], list[dict[str, Any]]]:
    """Score every saved checkpoint on ``objective``'s (held-out) pairs, write the best (the
    starting weights count as step 0 with ``before``) to final/; returns (step, its score, all
    scores). Best = highest accuracy, then mean margin; ties go to the earlier step."""
    policy = objective.policy
    best = {"step": 0, **before}
    scores, best_state = [best], None
    for ckpt in sorted((out / "checkpoints").glob("step_*")):  # ascending: ties keep the earlier
        # the loop saved the objective's state ("policy." + the policy's names)
        state = load_trainer_state(ckpt)["model"]
        objective.load_state_dict(state)
        scores.append({"step": int(ckpt.name.removeprefix("step_")), **objective.accuracy()})
        if (scores[-1]["accuracy"], scores[-1]["mean_margin"]) > (best["accuracy"], best["mean_margin"]):
            best, best_state = scores[-1], state
    if best_state is None:
        policy.load_state_dict(load_policy(start_ckpt).state_dict())
    else:
        objective.load_state_dict(best_state)
    save_final(out, policy)
    return best["step"], {k: best[k] for k in ("pairs", "accuracy", "mean_margin")}, scores


def run_tpo(args: TPOArgs) -> dict[str, Any]:
    """Train; returns the loop summary plus ``eval_before`` / ``eval_after`` accuracies,
    ``selected_step`` (the step final/ holds; 0 = the starting weights) and ``kept_reference``."""
    for name in ("steps", "pairs_per_step", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.beta <= 0 or args.lr <= 0 or args.lam < 0 or args.anchor < 0:
        raise ValueError(
            f"need beta > 0, lr > 0, lam >= 0, anchor >= 0; got {args.beta}, {args.lr}, "
            f"{args.lam}, {args.anchor}"
        )
    if args.select_every < 0 or args.min_pairs < 0:
        raise ValueError(
            f"need select_every >= 0 and min_pairs >= 0; got {args.select_every}, {args.min_pairs}"
        )
    torch.set_num_threads(args.threads)
    pairs_path = Path(args.pairs)
    if pairs_path.is_dir():  # a store: build the pairs once, keep them with the run
        pairs_path = Path(args.out) / "pairs.json"
        if not (args.resume and pairs_path.is_file()):
            make_pairs_file([args.pairs], pairs_path, seed=args.seed)
    pairs = load_pairs(pairs_path)
    if len(pairs) < args.min_pairs:
        reason = (
            f"{len(pairs)} training pairs < --min-pairs {args.min_pairs}: too little preference "
            "data to move the policy safely; final/ keeps the starting weights"
        )
        if not args.quiet:
            print(f"[tpo] {reason}")
        return keep_starting_weights(args, reason)
    eval_pairs = load_pairs(args.eval_pairs) if args.eval_pairs is not None else None
    noise_std = _noise_std(pairs, args.noise_std)
    select = eval_pairs is not None and args.select_every > 0

    seed_everything(args.seed)
    policy = load_policy(args.ckpt, device=args.device)
    ref = load_policy(args.ref if args.ref is not None else args.ckpt, device=args.device)
    for p in ref.parameters():
        p.requires_grad_(False)
    objective = PreferenceObjective(
        policy,
        ref,
        pairs,
        args.stage_aware,
        args.beta,
        args.lam,
        noise_std,
        progress=not args.quiet,
        anchor=args.anchor,
    )
    held_out = (
        make_evaluator(policy, ref, eval_pairs, noise_std) if eval_pairs is not None else None
    )
    del ref  # reference log-probs are cached tensors from here on

    def accuracy() -> dict[str, float]:
        return (held_out or objective).accuracy()

    before = accuracy() if not args.resume or select else None
    policy.train()
    loop_cfg = LoopConfig(
        device=args.device,
        steps=args.steps,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=min(args.warmup_steps, args.steps),
        grad_clip=args.grad_clip,
        seed=args.seed,
        log_every=args.log_every,
        # selection scores every select_every-th checkpoint, so all of them are kept
        save_every=args.select_every if select else args.save_every,
        keep_checkpoints=args.steps // args.select_every + 1 if select else 2,
        progress=not args.quiet,
    )

    def batch_fn(step: int, rank: int, world: int) -> dict[str, Any]:
        idx = pair_batch_indices(step, args.seed, len(pairs), args.pairs_per_step)
        return {"pair_index": torch.from_numpy(idx)}

    run_config = {
        "tpo": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "pairs": len(pairs),
        "noise_std": noise_std,
        "stage_names": objective.stage_names,
    }
    summary = train(
        objective,
        batch_fn,
        loop_cfg,
        args.out,
        resume=args.resume,
        run_config=run_config,
        trainable=list(policy.parameters()),
    )
    selection = None
    if select:
        step, after, selection = select_checkpoint(held_out, Path(args.out), args.ckpt, before)
    else:
        step, after = args.steps, accuracy()
    evaluation = {
        "eval_before": before,
        "eval_after": after,
        "held_out": args.eval_pairs is not None,
        "selected_step": step,
        "kept_reference": step == 0,
        "selection": selection,
    }
    (Path(args.out) / "preference_eval.json").write_text(json.dumps(evaluation, indent=2))
    return {**summary, **evaluation, "out": Path(args.out)}


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(TPOArgs, args=argv, prog="stare-robot train tpo")
    try:
        summary = run_tpo(args)
    except (PreferenceError, ReferenceMismatch, StoreError, FileNotFoundError, ValueError) as err:
        print(f"stare-robot train tpo: {err}", file=sys.stderr)
        return 2
    method = "STA-TPO" if args.stage_aware else "TPO"
    before, after = summary["eval_before"], summary["eval_after"]
    if after is None:
        print(f"{method}: not trained ({summary['reason']}) -> {summary['final']}")
        return 0
    start = f"{before['accuracy']:.2f} -> " if before else ""
    kept = f", kept step {summary['selected_step']}" if summary["selection"] else ""
    print(
        f"{method}: {args.steps} steps, preference accuracy {start}{after['accuracy']:.2f} on "
        f"{after['pairs']} pairs{kept} -> {summary['final']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
