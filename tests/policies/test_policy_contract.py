"""Contract tests over every registered policy type (flow head and action-token head)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from policy_helpers import (
    OBS_MODES,
    POLICY_TYPE_NAMES,
    build,
    config_for,
    observation,
    training_batch,
)

from stare_robot.keys import (
    DEFAULT_CAMERA,
    LOSS,
    LOSS_ACTION,
    LOSS_KEYFRAME,
    LOSS_STAGE,
    OBS_ENV_STATE,
    OBS_STATE,
    STAGE_LABEL,
    obs_rgb,
)
from stare_robot.policies import (
    POLICY_TYPES,
    get_config_class,
    get_policy_class,
    load_policy,
    make_config,
)
from stare_robot.policies.base import Policy

ALL_CASES = [(t, m) for t in POLICY_TYPE_NAMES for m in OBS_MODES]


def test_registry_resolves_every_type():
    assert set(POLICY_TYPES) == {"pi0", "pi0_tokens"}
    for policy_type in POLICY_TYPES:
        config = make_config(policy_type)
        assert config.type == policy_type
        assert isinstance(config, get_config_class(policy_type))
        assert get_policy_class(policy_type).config_class is type(config)
        assert issubclass(get_policy_class(policy_type), Policy)
    with pytest.raises(ValueError, match="Did you mean 'pi0_tokens'"):
        get_policy_class("pi0_token")


@pytest.mark.parametrize("policy_type,obs_mode", ALL_CASES)
def test_save_then_load_predicts_bit_identically(tmp_path, policy_type, obs_mode):
    policy = build(policy_type, obs_mode, seed=0)
    obs = observation(policy.config, seed=3)
    before = policy.predict(obs)
    assert before.shape == (policy.config.chunk_size, policy.config.action_dim)
    assert before.dtype == np.float32 and np.isfinite(before).all()

    policy.save_pretrained(tmp_path / "ckpt")
    torch.manual_seed(123)  # a loader that kept its fresh random init would predict differently
    loaded = load_policy(tmp_path / "ckpt")
    assert type(loaded) is type(policy)
    saved_fields = {k: v for k, v in loaded.config.to_dict().items() if k != "backbone_config"}
    assert saved_fields == {
        k: v for k, v in policy.config.to_dict().items() if k != "backbone_config"
    }
    assert loaded.metadata.to_dict() == policy.metadata.to_dict()
    np.testing.assert_array_equal(loaded.predict(obs), before)
    other = build(policy_type, obs_mode, seed=1)
    assert not np.array_equal(other.predict(obs), before)


@pytest.mark.parametrize("policy_type", POLICY_TYPE_NAMES)
def test_predict_is_deterministic_and_seeded_sampling_is_reproducible(policy_type):
    policy = build(policy_type, "state")
    obs = observation(policy.config)
    np.testing.assert_array_equal(policy.predict(obs), policy.predict(obs))
    sample = policy.predict(obs, seed=7)
    np.testing.assert_array_equal(policy.predict(obs, seed=7), sample)
    assert not np.array_equal(sample, policy.predict(obs))
    assert not np.array_equal(sample, policy.predict(obs, seed=8))
    # the instruction is part of the input
    other_instruction = dict(obs, instruction="lift the peg upright")
    assert not np.array_equal(policy.predict(other_instruction), policy.predict(obs))


@pytest.mark.parametrize("policy_type", POLICY_TYPE_NAMES)
def test_seeded_training_is_deterministic(policy_type):
    def run() -> tuple[list[float], np.ndarray]:
        policy = build(policy_type, "rgb", seed=0)
        batch = training_batch(policy, batch_size=4, seed=0)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
        torch.manual_seed(42)  # flow matching draws noise and times from torch's generator
        losses = []
        for _ in range(3):
            loss = policy.training_losses(batch)[LOSS]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses, policy.predict(observation(policy.config, seed=5))

    untrained = build(policy_type, "rgb", seed=0).predict(
        observation(config_for(policy_type, "rgb"), 5)
    )
    losses_a, action_a = run()
    losses_b, action_b = run()
    assert losses_a == losses_b
    np.testing.assert_array_equal(action_a, action_b)
    assert not np.array_equal(action_a, untrained)  # the steps did change the policy


@pytest.mark.parametrize("policy_type", POLICY_TYPE_NAMES)
def test_training_losses_give_the_stake_heads_gradients(policy_type):
    policy = build(policy_type, "state")
    batch = training_batch(policy)
    losses = policy.training_losses(batch)
    assert set(losses) == {LOSS, LOSS_ACTION, LOSS_STAGE, LOSS_KEYFRAME}
    assert all(v.ndim == 0 for v in losses.values())
    cfg = policy.config
    expected = (
        losses[LOSS_ACTION]
        + cfg.stage_loss_weight * losses[LOSS_STAGE]
        + cfg.keyframe_loss_weight * losses[LOSS_KEYFRAME]
    )
    torch.testing.assert_close(losses[LOSS], expected)
    losses[LOSS].backward()
    stake = policy.stake
    for name, param in [
        ("stage_head", stake.stage_head.weight),
        ("keyframe_head", stake.keyframe_head[0].weight),
        ("queries", stake.queries),
    ]:
        assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient reaches {name}"
    # the stage loss reads the labels: flipping them changes it
    flipped = dict(batch, **{STAGE_LABEL: 1.0 - batch[STAGE_LABEL]})
    torch.manual_seed(0)
    assert not torch.isclose(policy.training_losses(flipped)[LOSS_STAGE], losses[LOSS_STAGE])


@pytest.mark.parametrize("policy_type", POLICY_TYPE_NAMES)
def test_without_stake_the_loss_is_the_action_loss(policy_type):
    policy = build(policy_type, "state", use_stake=False)
    assert policy.stake is None
    batch = training_batch(policy)
    torch.manual_seed(0)
    losses = policy.training_losses(batch)
    assert set(losses) == {LOSS, LOSS_ACTION}
    assert losses[LOSS] is losses[LOSS_ACTION]


@pytest.mark.parametrize("policy_type,obs_mode", ALL_CASES)
def test_aux_heads_are_never_called_at_inference(policy_type, obs_mode):
    policy = build(policy_type, obs_mode)
    obs = observation(policy.config)
    calls: list[str] = []
    heads = {"stage_head": policy.stake.stage_head, "keyframe_head": policy.stake.keyframe_head}
    for name, head in heads.items():
        for module in head.modules():
            module.register_forward_hook(lambda *_, name=name: calls.append(name))
    with_heads = policy.predict(obs)
    policy.predict(obs, seed=1)
    assert calls == [], f"predict called the StaKe heads: {calls}"

    policy.training_losses(training_batch(policy, batch_size=2))
    assert {"stage_head", "keyframe_head"} <= set(calls)  # the hooks do fire in training

    del policy.stake.stage_head, policy.stake.keyframe_head
    np.testing.assert_array_equal(policy.predict(obs), with_heads)

    # the query tokens themselves stay in the input at inference
    with torch.no_grad():
        policy.stake.queries.add_(1.0)
    assert not np.array_equal(policy.predict(obs), with_heads)


@pytest.mark.parametrize("policy_type", POLICY_TYPE_NAMES)
def test_metadata_lists_exactly_the_inputs_the_policy_reads(policy_type):
    rgb = build(policy_type, "rgb")
    state = build(policy_type, "state")
    assert set(rgb.metadata.inputs) == {obs_rgb(DEFAULT_CAMERA), OBS_STATE}
    assert rgb.metadata.inputs[obs_rgb(DEFAULT_CAMERA)].shape == (128, 128, 3)
    assert set(state.metadata.inputs) == {OBS_STATE, OBS_ENV_STATE}
    for policy in (rgb, state):
        obs = {
            k: v
            for k, v in observation(policy.config).items()
            if k in policy.metadata.inputs or k == "instruction"
        }
        assert policy.predict(obs).shape == (policy.metadata.chunk_size, policy.metadata.action_dim)
    # every declared input matters: changing the env state changes a state-mode prediction
    obs = observation(state.config)
    changed = dict(obs, **{OBS_ENV_STATE: obs[OBS_ENV_STATE] + 3.0})
    assert not np.array_equal(state.predict(obs), state.predict(changed))
    obs = observation(rgb.config)
    changed = dict(obs, **{obs_rgb(DEFAULT_CAMERA): 255 - obs[obs_rgb(DEFAULT_CAMERA)]})
    assert not np.array_equal(rgb.predict(obs), rgb.predict(changed))


def test_importing_the_registry_and_configs_does_not_load_torch():
    code = (
        "import sys\n"
        "import stare_robot.policies\n"
        "from stare_robot.policies import make_config\n"
        "config = make_config('pi0_tokens', obs_mode='state', env_state_dim=3)\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
