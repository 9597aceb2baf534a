"""The VLA policies, registered by ``type`` name.

    from stare_robot.policies import load_policy, make_config, make_policy
    config = make_config("pi0_tokens", obs_mode="state", env_state_dim=25)
    policy = make_policy(config, stats)          # stats: NormalizationStats from the data
    policy.save_pretrained("runs/sft/final")
    policy = load_policy("runs/sft/final")       # reads config.json's "type"

Importing this package is cheap: a policy's modules (torch, transformers) load only when that
type is used.

Adding a backbone = a policy folder (configuration / modeling / processor) whose policy class
implements the training protocol (:mod:`stare_robot.policies.protocol`) plus one line in
:data:`POLICY_TYPES`; tests (or plugins) register more types at run time::

    register_policy("my_policy", "my_pkg.configuration:MyConfig", "my_pkg.modeling:MyPolicy")
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from stare_robot.names import did_you_mean
from stare_robot.policies.base import ArraySpec, ObservationError, Policy, PolicyMetadata

# type -> (config class, policy class), as "module:attribute" (resolved on first use) or the class
POLICY_TYPES: dict[str, tuple[str | type, str | type]] = {
    "pi0": (
        "stare_robot.policies.pi0.configuration_pi0:PI0PolicyConfig",
        "stare_robot.policies.pi0.modeling_pi0:PI0Policy",
    ),
    "pi0_tokens": (
        "stare_robot.policies.pi0.configuration_pi0:PI0TokensPolicyConfig",
        "stare_robot.policies.pi0.modeling_pi0_tokens:PI0TokensPolicy",
    ),
}


def _resolve(path: str | type) -> Any:
    if not isinstance(path, str):
        return path
    module, attribute = path.split(":")
    return getattr(importlib.import_module(module), attribute)


def register_policy(
    policy_type: str, config_class: str | type, policy_class: str | type, *, replace: bool = False
) -> None:
    """Register ``policy_type``: its config class and policy class, each a class or a lazy
    ``"module:attribute"`` path. The config's ``type`` field and ``config.json``'s ``"type"`` must
    be ``policy_type``; the policy implements
    :class:`~stare_robot.policies.protocol.TrainablePolicy`.
    Re-registering an existing type is an error unless ``replace``."""
    if not isinstance(policy_type, str) or not policy_type:
        raise ValueError(f"a policy type must be a non-empty string, got {policy_type!r}")
    for what, ref in (("config_class", config_class), ("policy_class", policy_class)):
        if isinstance(ref, str) and ref.count(":") != 1:
            raise ValueError(f"{what} must be a class or 'module:attribute', got {ref!r}")
        if not isinstance(ref, (str, type)):
            raise TypeError(
                f"{what} must be a class or 'module:attribute', got {type(ref).__name__}"
            )
    if policy_type in POLICY_TYPES and not replace:
        raise ValueError(f"policy type {policy_type!r} is already registered (pass replace=True)")
    POLICY_TYPES[policy_type] = (config_class, policy_class)


def unregister_policy(policy_type: str) -> None:
    """Remove a type added by :func:`register_policy` (tests clean up with it)."""
    _entry(policy_type)
    del POLICY_TYPES[policy_type]


def _entry(policy_type: str) -> tuple[str | type, str | type]:
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
    "register_policy",
    "unregister_policy",
]
