"""Preference losses: plain TPO (GRAPE's trajectory-level DPO) and STA-TPO (stage-aware).

Notation (DESIGN.md): for a trajectory tau with per-step policy log-probs ``logp[t]`` and frozen
reference log-probs ``ref[t]``,

    q(tau)      = mean over the steps of (logp[t] - ref[t])                     plain TPO
    q(tau^(k))  = mean over the steps of stage k of (logp[t] - ref[t])         STA-TPO
    q_hat       = q(tau^(k)) - lambda * cost_k(tau)

    TPO      loss = -log sigmoid(beta * (q(tau+) - q(tau-)))                     mean over pairs
    STA-TPO  loss = -(1/K) * sum_k gate_k * log sigmoid(beta * (q_hat(tau+^(k)) - q_hat(tau-^(k))))

``gate_k`` is 1 when stage k-1 was completed in both trajectories (always 1 for k = 0); a stage
is completed when the episode entered the next one, i.e. ``furthest_stage >= k``. Gated-out
stages contribute nothing; the 1/K normalisation uses the number of stages K (the paper's form),
so a pair whose trajectories both stopped early weighs less than one that got through.

Optional success anchor (an SFT-like term, added by the trainer with weight ``anchor``):

    anchor loss = -mean over the pairs whose preferred trajectory succeeded of q(tau+)

It raises the likelihood of successful trajectories' actions instead of only widening the gap
to the rejected ones, which on its own can be won by making *both* less likely.

Shapes: P pairs, T padded steps per trajectory, K stages. Everything here is plain torch with no
knowledge of policies or stores; :mod:`stare_robot.train.tpo` computes the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


class PreferenceInputError(ValueError):
    """Preference-loss inputs that do not fit together (shapes, empty stages)."""


@dataclass
class PreferenceLoss:
    """A preference loss and what the trainer logs about it."""

    loss: torch.Tensor  # () scalar, back-propagated
    margin: torch.Tensor  # (P,) beta * (q_hat+ - q_hat-) summed over counted stages (TPO: one)
    accuracy: torch.Tensor  # () fraction of pairs with margin > 0, ties (margin 0) count half
    stage_margin: torch.Tensor | None = None  # (P, K) per-stage beta-margins, 0 where gated out
    gate: torch.Tensor | None = None  # (P, K) bool stage counted
    anchor: torch.Tensor | None = None  # () success anchor loss (set by the trainer)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mean of ``values`` over ``dim`` where ``mask``; 0 where nothing is kept."""
    mask = mask.to(values.dtype)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def preference_accuracy(margin: torch.Tensor) -> torch.Tensor:
    """() fraction of pairs ranked right (margin > 0); a tie counts half, so a policy equal to
    its reference scores 0.5 (chance), not 0."""
    return ((margin > 0).float() + 0.5 * (margin == 0).float()).mean()


def trajectory_log_ratio(
    logp: torch.Tensor, ref_logp: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """q(tau): (P, T) per-step log-probs, (P, T) reference, (P, T) bool real steps -> (P,)."""
    if logp.shape != ref_logp.shape or logp.shape != valid.shape:
        raise PreferenceInputError(
            f"logp {tuple(logp.shape)}, ref_logp {tuple(ref_logp.shape)} and valid "
            f"{tuple(valid.shape)} must all be (P, T)"
        )
    return masked_mean(logp - ref_logp, valid)


def success_anchor(q_chosen: torch.Tensor, chosen_success: torch.Tensor) -> torch.Tensor:
    """() -mean of q(tau+) over the pairs whose preferred side succeeded (0 when none did).

    q_chosen: (P,) trajectory log-ratios of the preferred sides; chosen_success: (P,) bool."""
    if q_chosen.shape != chosen_success.shape or q_chosen.ndim != 1:
        raise PreferenceInputError(
            f"q_chosen {tuple(q_chosen.shape)} and chosen_success "
            f"{tuple(chosen_success.shape)} must both be (P,)"
        )
    return -masked_mean(q_chosen, chosen_success)


def stage_log_ratio(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    stage: torch.Tensor,
    valid: torch.Tensor,
    num_stages: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-stage q(tau^(k)).

    logp, ref_logp: (P, T) per-step log-probs; stage: (P, T) long stage index per step;
    valid: (P, T) bool real (non-padded) steps.
    Returns q (P, K) (0 where the stage has no step) and steps (P, K) long step counts.
    """
    if stage.shape != logp.shape:
        raise PreferenceInputError(
            f"stage {tuple(stage.shape)} must match logp {tuple(logp.shape)}"
        )
    in_stage = (stage[..., None] == torch.arange(num_stages, device=stage.device)) & valid[
        ..., None
    ]
    ratio = (logp - ref_logp)[..., None]  # (P, T, 1)
    q = masked_mean(ratio, in_stage, dim=1)  # (P, K)
    return q, in_stage.sum(1)


def tpo_loss(q_pos: torch.Tensor, q_neg: torch.Tensor, beta: float) -> PreferenceLoss:
    """Plain TPO. q_pos, q_neg: (P,) trajectory log-ratios of the preferred / rejected sides."""
    if q_pos.shape != q_neg.shape or q_pos.ndim != 1:
        raise PreferenceInputError(
            f"q_pos {tuple(q_pos.shape)} and q_neg {tuple(q_neg.shape)} must both be (P,)"
        )
    margin = beta * (q_pos - q_neg)
    loss = -F.logsigmoid(margin).mean()
    return PreferenceLoss(loss, margin, preference_accuracy(margin))


def stage_gate(
    furthest_pos: torch.Tensor, furthest_neg: torch.Tensor, num_stages: int
) -> torch.Tensor:
    """(P, K) bool: stage k counts when stage k-1 was completed in both (furthest >= k)."""
    k = torch.arange(num_stages, device=furthest_pos.device)
    return (furthest_pos[:, None] >= k) & (furthest_neg[:, None] >= k)


def sta_tpo_loss(
    q_pos: torch.Tensor,
    q_neg: torch.Tensor,
    cost_pos: torch.Tensor,
    cost_neg: torch.Tensor,
    furthest_pos: torch.Tensor,
    furthest_neg: torch.Tensor,
    beta: float,
    lam: float,
    steps_pos: torch.Tensor | None = None,
    steps_neg: torch.Tensor | None = None,
) -> PreferenceLoss:
    """STA-TPO.

    q_pos, q_neg: (P, K) per-stage log-ratios (:func:`stage_log_ratio`);
    cost_pos, cost_neg: (P, K) stage costs l_k (NaN allowed where the stage is gated out);
    furthest_pos, furthest_neg: (P,) long highest stage each trajectory entered;
    steps_pos, steps_neg: optional (P, K) step counts; a counted stage with no step is an error.
    """
    if q_pos.ndim != 2 or not (q_pos.shape == q_neg.shape == cost_pos.shape == cost_neg.shape):
        raise PreferenceInputError(
            f"q_pos {tuple(q_pos.shape)}, q_neg {tuple(q_neg.shape)}, cost_pos "
            f"{tuple(cost_pos.shape)}, cost_neg {tuple(cost_neg.shape)} must all be (P, K)"
        )
    num_pairs, num_stages = q_pos.shape
    for name, f in (("furthest_pos", furthest_pos), ("furthest_neg", furthest_neg)):
        if f.shape != (num_pairs,):
            raise PreferenceInputError(
                f"{name} has shape {tuple(f.shape)}, expected ({num_pairs},)"
            )
    gate = stage_gate(furthest_pos, furthest_neg, num_stages)
    for side, steps in (("preferred", steps_pos), ("rejected", steps_neg)):
        if steps is None:
            continue
        empty = gate & (steps == 0)
        if bool(empty.any()):
            p, k = (int(i) for i in empty.nonzero()[0])
            raise PreferenceInputError(
                f"pair {p}: stage {k} counts (stage {k - 1} was completed in both trajectories) "
                f"but the {side} trajectory has no step in it; its stage annotation is "
                "inconsistent (re-run `stare-robot stages annotate`)"
            )
    costs_ok = torch.isfinite(cost_pos) & torch.isfinite(cost_neg)
    if bool((gate & ~costs_ok).any()):
        p, k = (int(i) for i in (gate & ~costs_ok).nonzero()[0])
        raise PreferenceInputError(f"pair {p}: stage {k} counts but has a non-finite cost")
    # zero the costs of gated-out stages so NaNs never reach the graph
    cost_pos = torch.where(gate, cost_pos, torch.zeros_like(cost_pos))
    cost_neg = torch.where(gate, cost_neg, torch.zeros_like(cost_neg))
    stage_margin = beta * ((q_pos - lam * cost_pos) - (q_neg - lam * cost_neg))  # (P, K)
    stage_margin = torch.where(gate, stage_margin, torch.zeros_like(stage_margin))
    per_stage = -F.logsigmoid(stage_margin) * gate.to(stage_margin.dtype)
    loss = (per_stage.sum(1) / num_stages).mean()
    margin = stage_margin.sum(1)
    return PreferenceLoss(loss, margin, preference_accuracy(margin), stage_margin, gate)
