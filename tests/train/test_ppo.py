"""PPO / STA-PPO on real ManiSkill3 rollouts: what the rollout buffer holds (shaped rewards equal
to the stage engine's offline values, log-probs the update reproduces), the vectorised envs, and
bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stare_robot.sim.ppo import PPOArgs, PPOInputError, main, parse_shaping_off, run_ppo

from stare_robot import keys
from stare_robot.policies import load_policy, make_config, make_policy
from stare_robot.policies.normalize import NormalizationStats
from stare_robot.stages import potentials, shaped_reward

TASK = "PushCube-v1"
pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def sft_ckpt(demo_store, tmp_path_factory):
    """A real (barely trained) state-mode pi0 checkpoint on PushCube demos."""
    from stare_robot.train.sft import SFTArgs, run_sft

    out = tmp_path_factory.mktemp("ppo_sft")
    run_sft(SFTArgs(data=demo_store(TASK, 2), out=out, steps=2, batch_size=4, quiet=True))
    return out / "final"


def _trajectory(privileged: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([np.asarray(p[k]) for p in privileged]) for k in privileged[0]}


def test_rollout_buffer_matches_the_stage_engine_and_the_update(sft_ckpt):
    from stare_robot.sim.vector_env import make_vector_env

    from stare_robot.train.actor_critic import ActorCritic
    from stare_robot.train.ppo_rollout import collect_episodes, flatten_decisions

    policy = load_policy(sft_ckpt)
    ac = ActorCritic(policy, noise_std=0.1)
    gamma, mask, max_steps, execute = 0.9, {"contact": False}, 9, 2
    with make_vector_env(TASK, 2, "state", max_episode_steps=50) as venv:
        episodes = collect_episodes(
            venv, ac, "push_pull", [50_000, 50_001, 50_002], max_steps, execute,
            torch.Generator().manual_seed(0), gamma=gamma, shaping=True, shaping_mask=mask,
        )
    assert sorted(ep.seed for ep in episodes) == [50_000, 50_001, 50_002]
    for ep in episodes:
        T = ep.length
        assert 1 <= T <= max_steps and len(ep.stages) == len(ep.potentials) == T + 1
        # decisions execute consecutive spans of at most execute_steps actions, covering [0, T)
        assert ep.spans[0][0] == 0 and ep.spans[-1][1] == T
        assert all(b - a <= execute and b > a for a, b in ep.spans)
        assert all(ep.spans[k][1] == ep.spans[k + 1][0] for k in range(len(ep.spans) - 1))
        assert ep.truncated == (not ep.success) and (ep.success or T == max_steps)
        assert sum(ep.rewards) == float(ep.success)  # sparse: 1 on the success step only
        # the online potentials and shaped rewards are the stage engine's offline values
        traj = _trajectory(ep.privileged)
        offline = potentials("push_pull", traj, mask=[True, False, True, True])
        np.testing.assert_allclose(ep.potentials, offline, atol=1e-6)
        np.testing.assert_allclose(ep.shaped, shaped_reward(ep.rewards, offline, gamma), atol=1e-6)
    # the update scores the recorded samples exactly as the rollout did (ratio 1 before a step)
    data = flatten_decisions(episodes, gamma, 0.95)
    batch = policy.processor.collate(data["obs"])
    with torch.no_grad():
        logp, values, _ = ac.evaluate(batch, torch.as_tensor(data["records"]))
    np.testing.assert_allclose(logp.numpy(), data["log_probs"], rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(values.numpy(), data["values"], atol=1e-5)
    assert data["advantages"].shape == data["returns"].shape == (len(data["obs"]),)


def test_plain_ppo_trains_on_the_unshaped_reward(sft_ckpt):
    from stare_robot.sim.vector_env import make_vector_env

    from stare_robot.train.actor_critic import ActorCritic
    from stare_robot.train.ppo_rollout import collect_episodes

    ac = ActorCritic(load_policy(sft_ckpt), noise_std=0.1)
    with make_vector_env(TASK, 1, "state", max_episode_steps=50) as venv:
        (ep,) = collect_episodes(
            venv, ac, "push_pull", [50_003], 4, 2, torch.Generator().manual_seed(1), shaping=False
        )
    assert ep.shaped == ep.rewards and set(ep.potentials) == {0.0}


def test_ppo_run_writes_a_servable_policy_and_resumes(sft_ckpt, tmp_path):
    args = PPOArgs(
        ckpt=sft_ckpt, task=TASK, out=tmp_path / "ppo", iterations=1, episodes_per_iter=2,
        num_envs=2, max_steps=6, eval_every=0, value_warmup_iters=0, quiet=True, lr=1e-4,
    )
    first = run_ppo(args)
    before = load_policy(sft_ckpt).state_dict()
    after = load_policy(first["final"]).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the policy was updated
    assert (tmp_path / "ppo" / "value_head.safetensors").is_file()
    args.iterations, args.resume = 2, True
    second = run_ppo(args)
    assert [row["iteration"] for row in second["history"]] == [1, 2]
    assert second["history"][1]["env_steps"] > second["history"][0]["env_steps"]


def test_shaping_off_names_must_be_stages_of_the_family():
    assert parse_shaping_off("reach, goal", ("reach", "contact", "push_pull", "goal")) == {
        "reach": False,
        "goal": False,
    }
    with pytest.raises(PPOInputError, match="grasp.*stages are \\['reach'"):
        parse_shaping_off("grasp", ("reach", "contact", "push_pull", "goal"))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--task", "PushCub-v1"], "PushCube-v1"),  # unknown task: did-you-mean
        (["--task", TASK, "--shaping-off", "lift"], "does not have"),
        (["--task", TASK, "--reward", "shaped"], "sparse, dense"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(sft_ckpt, tmp_path, capsys, extra, message):
    code = main(["--ckpt", str(sft_ckpt), "--out", str(tmp_path / "o"), *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_checkpoint_from_another_action_space_is_refused(tmp_path, capsys):
    config = make_config("pi0", obs_mode="state", env_state_dim=35, action_dim=6, use_stake=False)
    stats = NormalizationStats.from_arrays(
        {
            keys.OBS_STATE: np.zeros((4, 18), np.float32),
            keys.OBS_ENV_STATE: np.zeros((4, 35), np.float32),
            keys.ACTION: np.zeros((4, 6), np.float32),
        }
    )
    ckpt = make_policy(config, stats).save_pretrained(tmp_path / "six_dof")
    code = main(["--ckpt", str(ckpt), "--task", TASK, "--out", str(tmp_path / "o")])
    assert code == 2
    assert "6-D actions" in capsys.readouterr().err


@pytest.mark.slow
def test_a_short_ppo_run_increases_the_mean_return(sft_ckpt):
    """Plain PPO on ManiSkill's dense reward, a few iterations on four fixed seeds: the sampling
    policy's mean return on those seeds (same sampler seed before and after) goes up."""
    from stare_robot.sim.vector_env import make_vector_env

    from stare_robot.train.actor_critic import ActorCritic
    from stare_robot.train.ppo import ppo_update
    from stare_robot.train.ppo_rollout import collect_episodes, flatten_decisions

    torch.manual_seed(0)
    ac = ActorCritic(load_policy(sft_ckpt), noise_std=0.1, noisy_steps=1)
    args = PPOArgs(ckpt=sft_ckpt, task=TASK, out=sft_ckpt, epochs=4, minibatch=16, lr=3e-4,
                   target_kl=1.0, reward="dense")
    optimizer = torch.optim.Adam([
        {"params": list(ac.policy.parameters()), "lr": args.lr},
        {"params": list(ac.value_head.parameters()), "lr": args.value_lr},
    ])
    seeds = [50_000, 50_001, 50_002, 50_003]

    def episodes(venv, sampler_seed):
        return collect_episodes(venv, ac, "push_pull", seeds, 16, 2,
                                torch.Generator().manual_seed(sampler_seed), reward="dense",
                                shaping=False)

    def mean_return(eps):
        return float(np.mean([sum(ep.rewards) for ep in eps]))

    with make_vector_env(TASK, 2, "state", max_episode_steps=50) as venv:
        before = mean_return(episodes(venv, 123))
        for it in range(8):
            data = flatten_decisions(episodes(venv, it), args.gamma, args.gae_lambda)
            ppo_update(ac, optimizer, data, args, np.random.default_rng(it), policy_on=it >= 1)
        after = mean_return(episodes(venv, 123))
    assert after > before + 0.05 * abs(before), (before, after)
