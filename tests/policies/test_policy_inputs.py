"""Bad input gets a clear error; normalisation statistics behave as documented."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from policy_helpers import (
    build,
    config_for,
    observation,
    stats_for,
    training_batch,
)

from stare_robot.keys import (
    ACTION,
    DEFAULT_CAMERA,
    INSTRUCTION,
    KEYFRAME_TARGET,
    OBS_ENV_STATE,
    OBS_STATE,
    obs_rgb,
)
from stare_robot.policies import load_policy, make_config, make_policy
from stare_robot.policies.base import ObservationError
from stare_robot.policies.normalize import FeatureStats, NormalizationStats
from stare_robot.policies.pi0.modeling_pi0 import CHECKPOINT_FILES


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = config_for("pi0", "state")
    path = tmp_path_factory.mktemp("ckpt") / "policy"
    make_policy(config, stats_for(config)).save_pretrained(path)
    return path


@pytest.mark.parametrize("missing", CHECKPOINT_FILES)
def test_checkpoint_missing_a_file_names_it(checkpoint, tmp_path, missing):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        load_policy(broken)


def test_loading_a_folder_that_does_not_exist_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_policy(tmp_path / "nowhere")


def test_checkpoint_with_an_unknown_type_suggests_the_right_one(checkpoint, tmp_path):
    broken = tmp_path / "typo"
    shutil.copytree(checkpoint, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "type": "pi_0"}))
    with pytest.raises(ValueError, match="unknown policy type 'pi_0'.*Did you mean 'pi0'"):
        load_policy(broken)


@pytest.mark.parametrize(
    "obs_mode,missing",
    [
        ("rgb", obs_rgb(DEFAULT_CAMERA)),
        ("rgb", OBS_STATE),
        ("state", OBS_ENV_STATE),
        ("state", INSTRUCTION),
    ],
)
def test_observation_missing_an_input_names_the_key(obs_mode, missing):
    policy = build("pi0", obs_mode)
    obs = observation(policy.config)
    del obs[missing]
    with pytest.raises(ObservationError, match=missing):
        policy.predict(obs)


def test_observation_with_a_wrong_shape_or_dtype_is_rejected():
    policy = build("pi0_tokens", "rgb")
    obs = observation(policy.config)
    image_key = obs_rgb(DEFAULT_CAMERA)
    with pytest.raises(ObservationError, match=r"obs/state.*\(17,\).*\(18,\)"):
        policy.predict({**obs, OBS_STATE: obs[OBS_STATE][:17]})
    with pytest.raises(ObservationError, match=f"{image_key}.*uint8"):
        policy.predict({**obs, image_key: obs[image_key].astype(np.float32)})


def test_training_batch_missing_a_key_or_misshapen_action_is_rejected():
    policy = build("pi0", "state")
    batch = training_batch(policy)
    with pytest.raises(ObservationError, match=KEYFRAME_TARGET):
        policy.training_losses({k: v for k, v in batch.items() if k != KEYFRAME_TARGET})
    with pytest.raises(ObservationError, match=OBS_ENV_STATE):
        policy.training_losses({k: v for k, v in batch.items() if k != OBS_ENV_STATE})
    with pytest.raises(ValueError, match=r"\(B, chunk_size, action_dim\) = \(B, 4, 7\)"):
        policy.training_losses({**batch, ACTION: batch[ACTION][:, :3]})


@pytest.mark.parametrize("policy_type", ["pi0", "pi0_tokens"])
def test_action_dimension_mismatch_between_stats_and_config(policy_type):
    config = config_for(policy_type, "rgb")
    with pytest.raises(ValueError, match=r"'action' dimension mismatch.*6 values.*action_dim=7"):
        make_policy(config, stats_for(config, action_dim=6))


def test_state_mode_stats_must_cover_the_env_state():
    config = config_for("pi0", "state")
    rgb_stats = stats_for(config_for("pi0", "rgb"))
    with pytest.raises(ValueError, match="lack 'obs/env_state'"):
        make_policy(config, rgb_stats)


def test_bad_config_values_name_the_field_and_the_valid_choices():
    with pytest.raises(ValueError, match=r"obs_mode='depth'.*\['rgb', 'state'\]"):
        make_config("pi0", obs_mode="depth")
    with pytest.raises(ValueError, match="did you mean 'chunk_size'"):
        make_config("pi0", chunk_sise=8)
    with pytest.raises(ValueError, match="normalization='quantile'"):
        make_config("pi0_tokens", normalization="mean_std")
    with pytest.raises(ValueError, match="Did you mean"):
        make_config("pi0-tokens")


def test_normalisation_modes_follow_their_formulas_and_invert():
    rng = np.random.default_rng(0)
    data = rng.normal(2.0, 3.0, size=(5000, 3)).astype(np.float32)
    stats = FeatureStats.from_array(data)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.std, data.std(0), rtol=1e-4)
    x = torch.from_numpy(data[:10])
    z = stats.normalize(x, "mean_std")
    np.testing.assert_allclose(
        z.numpy(), (data[:10] - stats.mean) / stats.std, rtol=1e-5, atol=1e-6
    )
    # quantile mode sends the 1st / 99th percentiles to -1 / +1
    ends = torch.from_numpy(np.stack([stats.q01, stats.q99]))
    np.testing.assert_allclose(
        stats.normalize(ends, "quantile").numpy(), [[-1] * 3, [1] * 3], atol=1e-5
    )
    for mode in ("mean_std", "quantile"):
        np.testing.assert_allclose(
            stats.unnormalize(stats.normalize(x, mode), mode).numpy(),
            data[:10],
            rtol=1e-5,
            atol=1e-5,
        )
    # a constant dimension stays finite
    flat = FeatureStats.from_array(np.ones((10, 2), np.float32))
    assert torch.isfinite(flat.normalize(torch.tensor([[5.0, 1.0]]), "mean_std")).all()


def test_statistics_round_trip_through_json_bit_exactly(tmp_path):
    rng = np.random.default_rng(1)
    stats = NormalizationStats.from_arrays({ACTION: rng.normal(size=(50, 7)) * 1e-3 + np.pi})
    stats.save(tmp_path)
    loaded = NormalizationStats.load(tmp_path)
    for name in ("mean", "std", "q01", "q99"):
        np.testing.assert_array_equal(getattr(loaded[ACTION], name), getattr(stats[ACTION], name))
    with pytest.raises(KeyError, match="obs/state.*cover.*action"):
        loaded[OBS_STATE]
