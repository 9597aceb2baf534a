"""The training-protocol conformance suite: every registered policy type, plus a test-only MLP
Gaussian policy (``mlp_policy.py``) registered by ``register_policy``, passes the same tests
through the real training code (SFT loop, TPO trainer, PPO update)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlp_policy import MLP_TYPE, MLPGaussianPolicy, MLPPolicyConfig
from policy_helpers import build, observation, training_batch

from stare_robot import keys
from stare_robot.policies import (
    POLICY_TYPES,
    get_policy_class,
    load_policy,
    make_config,
    register_policy,
    unregister_policy,
)
from stare_robot.policies.protocol import SamplingSpec, TrainablePolicy, sample_for_rollout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from preference_fakes import write_episode

TYPES = [*sorted(POLICY_TYPES), MLP_TYPE]
SPECS = {
    "whole_chunk": SamplingSpec(0.2),  # the TPO / collection sampler
    "last_step_noise_prefix": SamplingSpec(0.2, noisy_steps=1, scored_steps=2),  # PPO's
}


@pytest.fixture(scope="module", autouse=True)
def mlp_registered():
    register_policy(MLP_TYPE, MLPPolicyConfig, MLPGaussianPolicy)
    yield
    unregister_policy(MLP_TYPE)


def _weights(policy) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def _changed(before: dict, after: dict) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before)


def test_registry_adds_and_refuses_types():
    assert get_policy_class(MLP_TYPE) is MLPGaussianPolicy
    assert make_config(MLP_TYPE, env_state_dim=3).env_state_dim == 3
    with pytest.raises(ValueError, match="already registered"):
        register_policy("pi0", MLPPolicyConfig, MLPGaussianPolicy)
    with pytest.raises(ValueError, match="module:attribute"):
        register_policy("other", "no_colon_here", MLPGaussianPolicy)
    with pytest.raises(ValueError, match="unknown policy type"):
        unregister_policy("never_registered")


@pytest.mark.parametrize("policy_type", TYPES)
def test_every_type_implements_the_protocol(policy_type):
    policy = build(policy_type, "state")
    assert isinstance(policy, TrainablePolicy) and isinstance(policy, torch.nn.Module)
    assert policy.value_feature_dim > 0 and len(policy.record_shape) >= 2
    assert policy.aux_heads, "the suite expects auxiliary heads with the default config"


@pytest.mark.parametrize("policy_type", TYPES)
def test_save_then_load_predicts_identically(tmp_path, policy_type):
    policy = build(policy_type, "state", seed=0)
    obs = observation(policy.config, seed=3)
    before = policy.predict(obs)
    policy.save_pretrained(tmp_path / "ckpt")
    torch.manual_seed(123)  # a loader that kept a fresh random init would predict differently
    loaded = load_policy(tmp_path / "ckpt")
    assert type(loaded) is type(policy)
    np.testing.assert_array_equal(loaded.predict(obs), before)
    assert not np.array_equal(build(policy_type, "state", seed=1).predict(obs), before)


@pytest.mark.parametrize("policy_type", TYPES)
def test_predict_is_deterministic_and_sampling_follows_the_seed(policy_type):
    policy = build(policy_type, "state").eval()
    obs = observation(policy.config)
    np.testing.assert_array_equal(policy.predict(obs), policy.predict(obs))
    action, record = sample_for_rollout(policy, obs, 7)
    again, record_again = sample_for_rollout(policy, obs, 7)
    other, record_other = sample_for_rollout(policy, obs, 8)
    np.testing.assert_array_equal(action, again)
    np.testing.assert_array_equal(record, record_again)
    assert not np.array_equal(action, other) and not np.array_equal(record, record_other)
    assert action.shape == (policy.metadata.chunk_size, policy.metadata.action_dim)
    assert record.shape == policy.record_shape
    assert not np.array_equal(action, policy.predict(obs))  # a sample, not the deterministic chunk


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("policy_type", TYPES)
def test_log_likelihood_at_sampling_is_the_recomputed_one(policy_type, spec_name):
    spec = SPECS[spec_name]
    policy = build(policy_type, "state", seed=2, chunk_size=4).eval()
    observations = [observation(policy.config, seed=s) for s in range(3)]
    batch = policy.processor.collate(observations)
    out = policy.sample(batch, torch.Generator().manual_seed(0), spec)
    assert out.actions.shape == (3, 4, policy.metadata.action_dim)
    assert tuple(out.records.shape) == (3, *policy.record_shape)
    assert out.features.shape == (3, policy.value_feature_dim)
    assert not out.log_prob.requires_grad

    scored = policy.score(batch, out.records, spec)
    torch.testing.assert_close(scored.log_prob.detach(), out.log_prob, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(scored.features.detach(), out.features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(policy.value_features(batch), out.features, rtol=1e-5, atol=1e-5)
    alone = torch.cat(
        [
            policy.score(policy.processor.collate([o]), out.records[i : i + 1], spec).log_prob
            for i, o in enumerate(observations)
        ]
    )
    torch.testing.assert_close(alone.detach(), scored.log_prob.detach(), rtol=1e-4, atol=1e-3)
    # the likelihood reads the record
    assert not torch.allclose(
        policy.score(batch, out.records + 0.7, spec).log_prob, scored.log_prob
    )
    # differentiable in the policy's weights
    policy.zero_grad()
    scored.log_prob.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())
    torch.testing.assert_close(
        policy.log_prob(batch, out.records, spec).detach(), scored.log_prob.detach()
    )


@pytest.mark.parametrize("policy_type", TYPES)
def test_scoring_settings_are_checked(policy_type):
    policy = build(policy_type, "state", chunk_size=4)
    with pytest.raises(ValueError, match="scored_steps must be in 1..chunk_size=4"):
        policy.check_sampling(SamplingSpec(0.2, noisy_steps=1, scored_steps=5))
    whole = SamplingSpec(0.2, scored_steps=2)
    if not policy.prefix_scoring_is_exact(whole):
        with pytest.raises(ValueError):
            policy.check_sampling(whole)
    batch = policy.processor.collate([observation(policy.config)])
    with pytest.raises(ValueError):
        policy.score(batch, torch.zeros(1, 3), SamplingSpec(0.2))


@pytest.mark.parametrize("policy_type", TYPES)
def test_demonstration_actions_are_scored_where_the_likelihood_allows(policy_type):
    policy = build(policy_type, "state")
    shape = (2, policy.metadata.chunk_size, policy.metadata.action_dim)
    actions = np.random.default_rng(0).uniform(-0.05, 0.05, size=shape).astype(np.float32)
    records = policy.records_from_actions(actions)
    if records is None:  # e.g. the flow head: its likelihood needs the sampler's chain
        return
    batch = policy.processor.collate([observation(policy.config, s) for s in range(2)])
    logp = policy.log_prob(batch, records)
    assert logp.shape == (2,) and torch.isfinite(logp).all()


@pytest.mark.parametrize("policy_type", TYPES)
def test_inference_never_runs_the_aux_heads(policy_type):
    policy = build(policy_type, "state").eval()

    def refuse(module, args):
        raise RuntimeError("an auxiliary head ran")

    for head in policy.aux_heads.values():
        for module in head.modules():
            module.register_forward_pre_hook(refuse)
    obs = observation(policy.config)
    batch = policy.processor.collate([obs, observation(policy.config, 1)])
    policy.predict(obs)
    policy.predict_batch([obs, obs])
    sample_for_rollout(policy, obs, 3)
    for spec in SPECS.values():
        out = policy.sample(batch, torch.Generator().manual_seed(0), spec)
        policy.score(batch, out.records, spec)
    policy.value_features(batch)
    with pytest.raises(RuntimeError, match="auxiliary head ran"):  # the hooks are live
        policy.training_losses(training_batch(policy, batch_size=2))


# ------------------------------------------------------------------ updates through real trainers


@pytest.mark.parametrize("policy_type", TYPES)
def test_sft_steps_change_the_weights(policy_type, tmp_path):
    from stare_robot.train.loop import LoopConfig, train

    policy = build(policy_type, "state").train()
    batch = training_batch(policy, batch_size=4)
    before = _weights(policy)
    cfg = LoopConfig(steps=2, lr=1e-3, warmup_steps=0, save_every=100, log_every=1, progress=False)
    summary = train(policy, lambda step, rank, world: batch, cfg, tmp_path / "sft")
    assert len(summary["history"]) >= 1
    assert _changed(before, _weights(policy))
    np.testing.assert_array_equal(
        load_policy(summary["final"]).predict(observation(policy.config)),
        policy.eval().predict(observation(policy.config)),
    )


def _sampled_store(policy, path: Path, noise_std: float) -> Path:
    """Recorded episodes (preference_fakes) whose every step carries the sampler record of the
    query that produced it, as the rollout collector stores them."""
    from stare_robot.data.store import EpisodeStore

    source = EpisodeStore.create(path.with_name("plain.zarr"))
    outcomes = [(True, 4, 10), (True, 5, 11), (False, 4, None), (False, None, None)]
    for i, (success, closes, opens) in enumerate(outcomes):
        write_episode(source, "A", success, closes, opens, length=8, seed=i)
    store = EpisodeStore.create(path)
    for eid in source.episode_ids():
        reader = source[eid]
        arrays = reader.load()
        length = len(arrays[keys.ACTION])
        query = np.arange(length) // 2 * 2  # a query every 2 steps
        samples = []
        for t in range(length):
            obs = {k: arrays[k][query[t]] for k in policy.metadata.inputs}
            obs[keys.INSTRUCTION] = reader.attrs[keys.ATTR_INSTRUCTION]
            samples.append(sample_for_rollout(policy, obs, int(query[t]), noise_std)[1])
        arrays[keys.POLICY_QUERY_STEP] = query.astype(np.int32)
        arrays[keys.POLICY_SAMPLE] = np.stack(samples)
        attrs = {k: v for k, v in reader.attrs.items() if k != keys.ATTR_NUM_STEPS}
        attrs[keys.ATTR_CHAIN_NOISE_STD] = noise_std
        with store.new_episode(attrs=attrs) as ep:
            ep.extend(arrays)
    return path


@pytest.mark.parametrize("policy_type", TYPES)
def test_tpo_steps_change_the_weights(policy_type, tmp_path):
    from stare_robot.train.preferences import make_pairs_file
    from stare_robot.train.tpo import TPOArgs, run_tpo

    policy = build(policy_type, "state", use_stake=False, chunk_size=2)
    ckpt = policy.save_pretrained(tmp_path / "ckpt")
    store = _sampled_store(policy, tmp_path / "rollouts.zarr", noise_std=0.2)
    make_pairs_file([store], tmp_path / "pairs.json")
    result = run_tpo(
        TPOArgs(
            ckpt=ckpt,
            pairs=tmp_path / "pairs.json",
            out=tmp_path / "tpo",
            steps=2,
            warmup_steps=0,
            lr=1e-3,
            beta=0.5,
            min_pairs=1,
            quiet=True,
        )
    )
    assert result["selected_step"] == 2 and result["eval_after"]["pairs"] >= 1
    assert _changed(_weights(policy), _weights(load_policy(result["final"])))


@pytest.mark.parametrize("policy_type", TYPES)
def test_ppo_update_changes_the_weights_and_starts_at_ratio_one(policy_type):
    from stare_robot.train.actor_critic import ActorCritic
    from stare_robot.train.ppo import PPOArgs, ppo_update

    policy = build(policy_type, "state", seed=4, chunk_size=4)
    spec = SPECS["last_step_noise_prefix"]
    scored = spec.scored_steps if policy.prefix_scoring_is_exact(spec) else None
    ac = ActorCritic(policy, spec.noise_std, spec.noisy_steps, scored_steps=scored)
    observations = [observation(policy.config, seed=s) for s in range(8)]
    out = ac.act(observations, torch.Generator().manual_seed(0))
    batch = policy.processor.collate(observations)
    logp, values, _ = ac.evaluate(batch, torch.as_tensor(out.records))
    np.testing.assert_allclose(logp.detach().numpy(), out.log_probs, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(values.detach().numpy(), out.values, atol=1e-5)
    rng = np.random.default_rng(0)
    data = {
        "obs": observations,
        "records": out.records,
        "log_probs": out.log_probs,
        "values": out.values,
        "advantages": rng.normal(size=8),
        "returns": rng.normal(size=8),
    }
    args = PPOArgs(
        ckpt=".", task="PushCube-v1", out=".", epochs=1, minibatch=4, lr=1e-3, target_kl=1e9
    )
    optimizer = torch.optim.Adam(ac.parameters(), lr=args.lr)
    before = _weights(policy)
    stats = ppo_update(ac, optimizer, data, args, np.random.default_rng(0), policy_on=True)
    assert stats["updates"] == 2
    assert _changed(before, _weights(policy))


def test_training_code_uses_only_the_protocol():
    """No pi0 module, head check or private member of a policy in the trainers and collector."""
    from stare_robot.sim import collect
    from stare_robot.sim import ppo as ppo_driver

    from stare_robot.train import actor_critic, ppo, ppo_rollout, tpo

    modules = (actor_critic, tpo, ppo, ppo_rollout, collect, ppo_driver)
    sources = [inspect.getsource(m) for m in modules]
    for source in sources:
        assert "policies.pi0" not in source and "isinstance(policy" not in source
        assert "policy._" not in source and "policy)._" not in source


def test_the_protocol_module_is_cheap_to_import():
    """CLIs read DEFAULT_NOISE_STD / SamplingSpec before deciding to load torch."""
    import subprocess

    code = (
        "import sys\n"
        "from stare_robot.policies.protocol import DEFAULT_NOISE_STD, SamplingSpec\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
