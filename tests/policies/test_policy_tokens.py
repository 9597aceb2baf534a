"""The discrete action-token head: bins and exact log-probabilities."""

from __future__ import annotations

import numpy as np
import torch
from policy_helpers import build, observation, training_batch

from stare_robot.keys import ACTION, ACTION_IS_PAD, LOSS


def _hand_log_prob(logits: np.ndarray, actions: np.ndarray, num_bins: int) -> np.ndarray:
    """Per-dimension softmax over bins, written out in float64: (B, T, A, K), (B, T, A) -> (B,)."""
    log_probs = np.zeros(actions.shape[0])
    for b in range(actions.shape[0]):
        for t in range(actions.shape[1]):
            for d in range(actions.shape[2]):
                z = logits[b, t, d].astype(np.float64)
                softmax = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
                # bin k of K equal bins covers [-1 + 2k/K, -1 + 2(k+1)/K); outside values clip
                k = min(max(int(np.floor((actions[b, t, d] + 1) / 2 * num_bins)), 0), num_bins - 1)
                log_probs[b] += np.log(softmax[k])
    return log_probs


def test_log_prob_matches_a_hand_computed_softmax_over_bins():
    policy = build("pi0_tokens", "state", num_bins=8)  # few bins: every value's bin is clear
    batch = training_batch(policy, batch_size=2)
    batch.pop(ACTION_IS_PAD)
    # bin centres, both edges, and values beyond [-1, 1] that belong to the edge bins
    values = np.array([-0.9375, -0.3125, 0.0625, 0.6875, 1.0, -1.0, 1.7, -2.5], dtype=np.float32)
    rng = np.random.default_rng(0)
    actions = rng.choice(values, size=(2, policy.config.chunk_size, policy.config.action_dim))

    with torch.no_grad():
        # make the logits far from uniform so a wrong bin would show
        policy.bin_head.bias.copy_(torch.linspace(-3, 3, 8))
        logits = policy.action_logits(batch).numpy()
    assert logits.shape == (2, policy.config.chunk_size, policy.config.action_dim, 8)
    got = policy.log_prob(batch, torch.from_numpy(actions))
    np.testing.assert_allclose(got.detach().numpy(), _hand_log_prob(logits, actions, 8), rtol=1e-5)

    # padded steps are excluded from the sum
    is_pad = torch.zeros(2, policy.config.chunk_size, dtype=torch.bool)
    is_pad[1, 2:] = True
    padded = policy.log_prob({**batch, ACTION_IS_PAD: is_pad}, torch.from_numpy(actions))
    expected = _hand_log_prob(logits[:, :2], actions[:, :2], 8)
    np.testing.assert_allclose(padded[1].item(), expected[1], rtol=1e-5)
    np.testing.assert_allclose(padded[0].item(), got[0].item(), rtol=1e-6)

    # differentiable: TPO/PPO back-propagate through it
    got.sum().backward()
    assert policy.bin_head.weight.grad.abs().sum() > 0


def test_predict_returns_the_centre_of_the_most_likely_bin():
    policy = build("pi0_tokens", "state", num_bins=4)
    with torch.no_grad():  # force bin 2 of 4, i.e. [0, 0.5) with centre 0.25
        policy.bin_head.weight.zero_()
        policy.bin_head.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))
    action = policy.predict(observation(policy.config))
    expected = policy.processor.unnormalize_action(torch.full((1, 7), 0.25))[0].numpy()
    np.testing.assert_allclose(action, np.broadcast_to(expected, action.shape), rtol=1e-6)


def test_training_lowers_the_negative_log_likelihood_of_the_data():
    policy = build("pi0_tokens", "state", use_stake=False)
    batch = training_batch(policy, batch_size=4)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    before = policy.log_prob(batch, batch[ACTION]).detach()
    for _ in range(8):
        loss = policy.training_losses(batch)[LOSS]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = policy.log_prob(batch, batch[ACTION]).detach()
    assert (after > before).all(), (before, after)
