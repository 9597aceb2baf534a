"""The VLA policies, registered by ``type`` name.

    from stare_robot.policies import load_policy, make_config, make_policy
    config = make_config("pi0_tokens", obs_mode="state", env_state_dim=25)
    policy = make_policy(config, stats)          # stats: NormalizationStats from the data
    policy.save_pretrained("runs/sft/final")
    policy = load_policy("runs/sft/final")       # reads config.json's "type"

Importing this package is cheap: a policy's modules (torch, transformers) load only when that
type is used.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from stare_robot.names import did_you_mean
from stare_robot.policies.base import ArraySpec, ObservationError, Policy, PolicyMetadata

# type -> (config class, policy class), as "module:attribute"
POLICY_TYPES: dict[str, tuple[str, str]] = {
    "pi0": (
        "stare_robot.policies.pi0.configuration_pi0:PI0PolicyConfig",
        "stare_robot.policies.pi0.modeling_pi0:PI0Policy",
    ),
    "pi0_tokens": (
        "stare_robot.policies.pi0.configuration_pi0:PI0TokensPolicyConfig",
        "stare_robot.policies.pi0.modeling_pi0_tokens:PI0TokensPolicy",
    ),
}


def _resolve(path: str) -> Any:
    module, attribute = path.split(":")
    return getattr(importlib.import_module(module), attribute)


def _entry(policy_type: str) -> tuple[str, str]:
    if policy_type not in POLICY_TYPES:
        hint = did_you_mean(policy_type, POLICY_TYPES)
        raise ValueError(
            f"unknown policy type {policy_type!r}.{hint} Registered types: {sorted(POLICY_TYPES)}"
        )
    return POLICY_TYPES[policy_type]


def get_config_class(policy_type: str) -> type:
    return _resolve(_entry(policy_type)[0])


def get_policy_class(policy_type: str) -> type:
    return _resolve(_entry(policy_type)[1])


def make_config(policy_type: str, **overrides: Any):
    """The default config of ``policy_type`` with ``overrides`` applied."""
    return get_config_class(policy_type).from_dict({"type": policy_type, **overrides})


def make_policy(config: Any, stats: Any, **kwargs: Any):
    """A freshly initialised policy of ``config.type`` (random weights or a pretrained backbone)."""
    return get_policy_class(config.type)(config, stats, **kwargs)


def load_policy(path: str | Path, device: str | None = None):
    """Load any saved policy checkpoint folder, dispatching on its config's ``type``; with
    ``device`` (e.g. ``"cuda:0"``, ``"cpu"``) its parameters are moved there."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} is not a policy checkpoint: it has no config.json (written by save_pretrained)"
        )
    policy_type = json.loads(config_file.read_text()).get("type")
    policy = get_policy_class(policy_type).from_pretrained(path)
    return policy if device is None else policy.to(device)


__all__ = [
    "POLICY_TYPES",
    "ArraySpec",
    "ObservationError",
    "Policy",
    "PolicyMetadata",
    "get_config_class",
    "get_policy_class",
    "load_policy",
    "make_config",
    "make_policy",
]
