"""A full pi0 checkpoint loads by path: the paper-scale model is a config change, not a code change.

No pi0 weights can be downloaded here, so the test writes a (small) transformers pi0 checkpoint
folder itself, exactly as ``PI0ForConditionalGeneration.save_pretrained`` lays one out, with a
different image size and padded state/action widths, as ``lerobot/pi0_base`` has.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from policy_helpers import observation, stats_for
from transformers import ByT5Tokenizer, PI0ForConditionalGeneration

from stare_robot.policies import load_policy, make_config, make_policy
from stare_robot.policies.pi0.modeling_pi0 import tiny_backbone_config


@pytest.fixture(scope="module")
def pi0_folder(tmp_path_factory):
    torch.manual_seed(0)
    shape = make_config("pi0", image_size=64, chunk_size=10, state_dim=32, action_dim=32)
    backbone = PI0ForConditionalGeneration(tiny_backbone_config(shape, vocab_size=384))
    folder = tmp_path_factory.mktemp("pi0_base")
    backbone.save_pretrained(folder)
    ByT5Tokenizer().save_pretrained(folder)
    return folder, backbone.state_dict()


@pytest.mark.parametrize("policy_type", ["pi0", "pi0_tokens"])
def test_pretrained_backbone_loads_by_path_and_round_trips(pi0_folder, tmp_path, policy_type):
    folder, weights = pi0_folder
    download = tmp_path / "pi0_base"
    shutil.copytree(folder, download)
    config = make_config(policy_type, pretrained_path=str(download), chunk_size=4)
    torch.manual_seed(1)
    policy = make_policy(config, stats_for(config))
    loaded = policy.backbone.state_dict()
    for name, tensor in loaded.items():
        torch.testing.assert_close(tensor, weights[name], rtol=0, atol=0, msg=name)
    if policy_type == "pi0":  # the flow head keeps pi0 whole
        assert set(loaded) == set(weights)
    assert policy.backbone.config.chunk_size == 4  # a policy setting, not a weight

    # 128x128 camera images are resized to the backbone's 64x64; state/action are zero-padded
    obs = observation(policy.config)
    action = policy.predict(obs)
    assert action.shape == (4, 7) and np.isfinite(action).all()

    # the saved checkpoint rebuilds without the original folder
    policy.save_pretrained(tmp_path / "ckpt")
    shutil.rmtree(download)
    np.testing.assert_array_equal(load_policy(tmp_path / "ckpt").predict(obs), action)
