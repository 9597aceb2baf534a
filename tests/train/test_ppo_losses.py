"""PPO arithmetic against hand computation: chunk returns, GAE (terminal, time-limit bootstrap,
episode boundaries), advantage normalisation, the clipped surrogate and the value loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stare_robot.train.losses_ppo import (
    chunk_return,
    clipped_policy_loss,
    gae,
    normalize_advantages,
    value_loss,
)


def test_chunk_return_discounts_within_the_chunk():
    r, g = chunk_return(np.array([1.0, 2.0, 4.0]), gamma=0.5)
    assert r == pytest.approx(1.0 + 0.5 * 2.0 + 0.25 * 4.0)
    assert g == pytest.approx(0.125)


def test_gae_matches_hand_computation_with_a_terminal_end():
    # three decisions, the last ends the episode by success (next value 0)
    rewards = np.array([0.0, 0.5, 1.0])
    discounts = np.array([0.9, 0.9, 0.81])
    values = np.array([0.2, 0.4, 0.6])
    next_values = np.array([0.4, 0.6, 0.0])
    ends = np.array([False, False, True])
    lam = 0.5
    d2 = 1.0 + 0.81 * 0.0 - 0.6
    d1 = 0.5 + 0.9 * 0.6 - 0.4
    d0 = 0.0 + 0.9 * 0.4 - 0.2
    a2 = d2
    a1 = d1 + 0.9 * lam * a2
    a0 = d0 + 0.9 * lam * a1
    adv, ret = gae(rewards, discounts, values, next_values, ends, lam)
    np.testing.assert_allclose(adv, [a0, a1, a2])
    np.testing.assert_allclose(ret, [a0 + 0.2, a1 + 0.4, a2 + 0.6])


def test_gae_bootstraps_a_time_limit_and_stops_at_episode_boundaries():
    # two one-decision episodes back to back: the first cut by the time limit (bootstrap 0.7)
    adv, _ = gae(
        rewards=np.array([0.0, 1.0]),
        discounts=np.array([0.99, 0.99]),
        values=np.array([0.5, 0.3]),
        next_values=np.array([0.7, 0.0]),
        ends=np.array([True, True]),
        lam=0.95,
    )
    # no leakage of the second episode's advantage into the first
    np.testing.assert_allclose(adv, [0.99 * 0.7 - 0.5, 1.0 - 0.3])


def test_gae_with_lambda_one_gives_discounted_returns_minus_values():
    rewards = np.array([0.1, 0.2, 0.3, 0.4])
    gamma = 0.9
    values = np.array([0.3, 0.1, 0.2, 0.5])
    next_values = np.append(values[1:], 0.0)
    _, ret = gae(rewards, np.full(4, gamma), values, next_values, np.array([0, 0, 0, 1], bool), 1.0)
    expected = [sum(rewards[k:] * gamma ** np.arange(4 - k)) for k in range(4)]
    np.testing.assert_allclose(ret, expected)


def test_normalize_advantages():
    a = torch.tensor([1.0, 2.0, 3.0, 6.0])
    n = normalize_advantages(a)
    assert float(n.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(n.std()) == pytest.approx(1.0, abs=1e-5)
    assert float(normalize_advantages(torch.tensor([5.0]))[0]) == 0.0  # one sample: centred only


def test_clipped_policy_loss_matches_hand_computation():
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.9]))
    adv = torch.tensor([1.0, 1.0, -2.0, -1.0])
    loss, stats = clipped_policy_loss(new, old, adv, clip=0.2)
    # per sample min(r A, clip(r) A): 1.2, 0.5, -2.2, -0.9
    assert float(loss) == pytest.approx(-(1.2 + 0.5 - 2.2 - 0.9) / 4)
    assert float(stats["clip_fraction"]) == pytest.approx(0.5)
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.9])
    assert float(stats["approx_kl"]) == pytest.approx(float(((ratio - 1) - ratio.log()).mean()))


def test_clipped_loss_gradient_vanishes_where_the_clip_binds():
    new = torch.log(torch.tensor([1.5, 1.0])).requires_grad_()
    loss, _ = clipped_policy_loss(new, torch.zeros(2), torch.tensor([1.0, 1.0]), clip=0.2)
    loss.backward()
    assert float(new.grad[0]) == 0.0  # ratio 1.5 > 1.2 with A > 0: clipped, no gradient
    assert float(new.grad[1]) == pytest.approx(-0.5)  # d(-mean(r A))/dlogp = -r A / 2


def test_value_loss_plain_and_clipped():
    v = torch.tensor([1.0, 0.0])
    ret = torch.tensor([0.0, 2.0])
    assert float(value_loss(v, ret)) == pytest.approx(0.5 * (1.0 + 4.0) / 2)
    old = torch.tensor([0.0, 0.0])
    # clip 0.5: the first value can only move to 0.5 -> error max(1, 0.25) = 1;
    # the second stays at 0 -> max(4, 4) = 4
    assert float(value_loss(v, ret, old, clip=0.5)) == pytest.approx(0.5 * (1.0 + 4.0) / 2)
    v2 = torch.tensor([0.2, 1.5])
    # second: plain (1.5-2)^2 = 0.25, clipped to 0.5 -> (0.5-2)^2 = 2.25 (pessimistic max)
    assert float(value_loss(v2, ret, old, clip=0.5)) == pytest.approx(0.5 * (0.04 + 2.25) / 2)
