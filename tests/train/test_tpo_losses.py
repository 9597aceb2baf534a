"""TPO / STA-TPO losses against values computed by hand on a tiny synthetic batch."""

from __future__ import annotations

import math

import pytest
import torch

from stare_robot.train.losses_tpo import (
    PreferenceInputError,
    sta_tpo_loss,
    stage_log_ratio,
    success_anchor,
    tpo_loss,
    trajectory_log_ratio,
)


def nls(x: float) -> float:
    """-log sigmoid(x)"""
    return math.log1p(math.exp(-x))


# Two pairs, two stages, four steps each; the last step of pair 1's rejected side is padding.
LOGP_POS = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-1.0, -1.0, -1.0, -1.0]])
REF_POS = torch.tensor([[-1.5, -2.0, -2.0, -4.0], [-2.0, -1.0, -2.0, -1.0]])
STAGE_POS = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
LOGP_NEG = torch.tensor([[-2.0, -2.0, -2.0, -2.0], [-3.0, -1.0, -2.0, 0.0]])
REF_NEG = torch.tensor([[-1.0, -2.0, -3.0, -2.0], [-1.0, -1.0, -1.0, 0.0]])
STAGE_NEG = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 0]])
VALID_POS = torch.ones(2, 4, dtype=torch.bool)
VALID_NEG = torch.tensor([[True] * 4, [True, True, True, False]])
COST_POS = torch.tensor([[0.1, 0.2], [0.5, 0.6]])
COST_NEG = torch.tensor([[0.3, 0.4], [0.7, float("nan")]])  # pair 1 rejected never entered stage 1
FURTHEST_POS = torch.tensor([1, 1])
FURTHEST_NEG = torch.tensor([1, 0])  # pair 1: stage 0 not completed by the rejected side

# by hand: log-ratios per step, then means per stage
# pair 0 pos ratios [0.5, 0, -1, 0] -> stage0 0.25, stage1 -0.5
# pair 0 neg ratios [-1, 0, 1, 0]  -> stage0 -1,   stage1 1/3
# pair 1 pos ratios [1, 0, 1, 0]   -> stage0 0.5,  stage1 0.5
# pair 1 neg ratios [-2, 0, -1, pad] -> stage0 -1, stage1 (empty) 0
Q_POS = [[0.25, -0.5], [0.5, 0.5]]
Q_NEG = [[-1.0, 1.0 / 3.0], [-1.0, 0.0]]


def stage_inputs():
    q_pos, n_pos = stage_log_ratio(LOGP_POS, REF_POS, STAGE_POS, VALID_POS, 2)
    q_neg, n_neg = stage_log_ratio(LOGP_NEG, REF_NEG, STAGE_NEG, VALID_NEG, 2)
    return q_pos, q_neg, n_pos, n_neg


def test_stage_log_ratios_are_per_stage_means_of_policy_minus_reference():
    q_pos, q_neg, n_pos, n_neg = stage_inputs()
    torch.testing.assert_close(q_pos, torch.tensor(Q_POS))
    torch.testing.assert_close(q_neg, torch.tensor(Q_NEG))
    assert n_pos.tolist() == [[2, 2], [2, 2]] and n_neg.tolist() == [[1, 3], [3, 0]]


def test_sta_tpo_loss_matches_hand_computation_with_costs_and_gating():
    beta, lam = 0.5, 2.0
    q_pos, q_neg, n_pos, n_neg = stage_inputs()
    result = sta_tpo_loss(
        q_pos, q_neg, COST_POS, COST_NEG, FURTHEST_POS, FURTHEST_NEG, beta, lam, n_pos, n_neg
    )
    m00 = beta * ((0.25 - lam * 0.1) - (-1.0 - lam * 0.3))
    m01 = beta * ((-0.5 - lam * 0.2) - (1.0 / 3.0 - lam * 0.4))
    m10 = beta * ((0.5 - lam * 0.5) - (-1.0 - lam * 0.7))
    # pair 1, stage 1 is gated out: the rejected side never completed stage 0
    expected = ((nls(m00) + nls(m01)) / 2 + (nls(m10) + 0.0) / 2) / 2
    assert result.loss.item() == pytest.approx(expected, rel=1e-6)
    assert result.gate.tolist() == [[True, True], [True, False]]
    torch.testing.assert_close(result.stage_margin, torch.tensor([[m00, m01], [m10, 0.0]]))
    assert result.accuracy.item() == pytest.approx(((m00 + m01 > 0) + (m10 > 0)) / 2)


def test_a_gated_out_stage_contributes_nothing_and_gets_no_gradient():
    logp_pos = LOGP_POS.clone().requires_grad_(True)
    q_pos, _ = stage_log_ratio(logp_pos, REF_POS, STAGE_POS, VALID_POS, 2)
    _, q_neg, n_pos, n_neg = stage_inputs()
    loss = sta_tpo_loss(
        q_pos, q_neg, COST_POS, COST_NEG, FURTHEST_POS, FURTHEST_NEG, 0.5, 2.0, n_pos, n_neg
    ).loss
    loss.backward()
    assert logp_pos.grad[1, 2:].abs().sum() == 0  # pair 1's stage-1 steps
    assert logp_pos.grad[1, :2].abs().sum() > 0 and logp_pos.grad[0].abs().sum() > 0
    # changing what the gated stage holds changes nothing
    other = q_pos.detach().clone()
    other[1, 1] = 100.0
    again = sta_tpo_loss(other, q_neg, COST_POS, COST_NEG, FURTHEST_POS, FURTHEST_NEG, 0.5, 2.0)
    assert again.loss.item() == pytest.approx(loss.item(), rel=1e-6)


def test_lambda_zero_is_per_stage_dpo_and_ignores_costs():
    beta = 0.3
    q_pos, q_neg, _, _ = stage_inputs()
    got = sta_tpo_loss(q_pos, q_neg, COST_POS, COST_NEG, FURTHEST_POS, FURTHEST_NEG, beta, 0.0)
    # DPO on each counted stage: -log sigmoid(beta * (log-ratio+ - log-ratio-))
    dpo = [[nls(beta * (Q_POS[p][k] - Q_NEG[p][k])) for k in range(2)] for p in range(2)]
    expected = ((dpo[0][0] + dpo[0][1]) / 2 + dpo[1][0] / 2) / 2
    assert got.loss.item() == pytest.approx(expected, rel=1e-6)
    other_costs = sta_tpo_loss(
        q_pos, q_neg, COST_POS * 9, COST_NEG * 0, FURTHEST_POS, FURTHEST_NEG, beta, 0.0
    )
    assert other_costs.loss.item() == pytest.approx(expected, rel=1e-6)


def test_plain_tpo_is_trajectory_level_dpo():
    beta = 0.5
    q_pos = trajectory_log_ratio(LOGP_POS, REF_POS, VALID_POS)
    q_neg = trajectory_log_ratio(LOGP_NEG, REF_NEG, VALID_NEG)
    torch.testing.assert_close(q_pos, torch.tensor([-0.5 / 4, 2.0 / 4]))
    torch.testing.assert_close(q_neg, torch.tensor([0.0, -3.0 / 3]))
    result = tpo_loss(q_pos, q_neg, beta)
    expected = (nls(beta * (-0.125 - 0.0)) + nls(beta * (0.5 + 1.0))) / 2
    assert result.loss.item() == pytest.approx(expected, rel=1e-6)
    assert result.accuracy.item() == pytest.approx(0.5)


def test_a_counted_stage_without_steps_is_a_clear_error():
    q_pos, q_neg, n_pos, n_neg = stage_inputs()
    with pytest.raises(
        PreferenceInputError, match="pair 1: stage 1 counts .* rejected trajectory has no step"
    ):
        sta_tpo_loss(
            q_pos,
            q_neg,
            COST_POS,
            COST_NEG,
            FURTHEST_POS,
            torch.tensor([1, 1]),
            0.5,
            1.0,
            n_pos,
            n_neg,
        )


def test_mismatched_shapes_are_named():
    with pytest.raises(PreferenceInputError, match=r"must both be \(P,\)"):
        tpo_loss(torch.zeros(3), torch.zeros(2), 0.1)
    with pytest.raises(PreferenceInputError, match=r"furthest_neg has shape \(3,\)"):
        sta_tpo_loss(
            torch.zeros(2, 2),
            torch.zeros(2, 2),
            torch.zeros(2, 2),
            torch.zeros(2, 2),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(3, dtype=torch.long),
            0.1,
            1.0,
        )


def test_success_anchor_is_minus_the_mean_log_ratio_of_successful_preferred_sides():
    q = torch.tensor([0.4, -0.2, 1.0], requires_grad=True)
    success = torch.tensor([True, True, False])
    anchor = success_anchor(q, success)
    assert float(anchor.detach()) == pytest.approx(-(0.4 - 0.2) / 2)
    anchor.backward()
    # only the successful sides are pulled up; a failed preferred side gets no gradient
    assert q.grad.tolist() == pytest.approx([-0.5, -0.5, 0.0])
    assert float(success_anchor(q.detach(), torch.zeros(3, dtype=torch.bool))) == 0.0
    with pytest.raises(PreferenceInputError, match=r"q_chosen \(3,\) and chosen_success \(2,\)"):
        success_anchor(q.detach(), success[:2])
