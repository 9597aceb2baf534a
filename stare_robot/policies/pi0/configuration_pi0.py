"""Configuration of the pi0-based policies: plain dataclasses, cheap to import (no torch here).

Two action heads share one backbone (transformers' ``PI0ForConditionalGeneration``):

* ``type="pi0"`` — pi0's own flow-matching action expert over action chunks;
* ``type="pi0_tokens"`` — OpenVLA-style discrete action tokens (per-dimension bins) read off the
  same VLM prefix, which gives exact ``log_prob`` for preference / RL fine-tuning.

The default is a tiny backbone that trains on 2 CPU cores. The paper-scale model is a config
change: set ``pretrained_path`` to a full pi0 checkpoint folder (e.g. a download of
``lerobot/pi0_base``) and, if that folder has no tokenizer, ``tokenizer_path`` to PaliGemma's.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from stare_robot.keys import ACTION_DIM, ACTION_SPACE_EE_DELTA, DEFAULT_CAMERA

OBS_MODES = ("rgb", "state")
NORMALIZATION_MODES = ("mean_std", "quantile")


@dataclass
class TinyBackboneSize:
    """Sizes of the tiny pi0 built from scratch when no pretrained checkpoint is given.

    The Gemma action expert attends to the VLM's key/value cache layer by layer, so both must have
    the same number of layers, key/value heads and head size (``layers``, ``kv_heads``,
    ``head_dim`` are shared).
    """

    layers: int = 2
    heads: int = 2
    kv_heads: int = 1
    head_dim: int = 64
    vlm_hidden: int = 128
    vlm_intermediate: int = 256
    expert_hidden: int = 128
    expert_intermediate: int = 256
    vision_hidden: int = 128
    vision_intermediate: int = 256
    vision_layers: int = 2
    vision_heads: int = 2
    patch_size: int = 16


@dataclass
class PI0PolicyConfig:
    """A pi0 policy with the flow-matching action expert (``type="pi0"``)."""

    type: str = "pi0"

    # --- what the policy reads and writes ---
    obs_mode: str = "rgb"  # "rgb": cameras + obs/state; "state": obs/state + obs/env_state
    cameras: tuple[str, ...] = (DEFAULT_CAMERA,)  # rgb mode only
    image_size: int = 128  # side of the square camera images the policy accepts
    state_dim: int = 18  # obs/state width (Panda: 9 joint positions + 9 joint velocities)
    env_state_dim: int = 0  # obs/env_state width, state mode only (task-dependent)
    action_dim: int = ACTION_DIM
    chunk_size: int = 4
    action_space: str = ACTION_SPACE_EE_DELTA
    control_rate_hz: float = 20.0
    max_instruction_tokens: int = 48  # instructions are padded / truncated to this many tokens
    normalization: str = "mean_std"  # "mean_std" | "quantile" (1st/99th percentile -> [-1, 1])

    # --- backbone ---
    pretrained_path: str | None = None  # a full pi0 checkpoint folder; None = tiny from scratch
    tokenizer_path: str | None = None  # None: the checkpoint's tokenizer, else a byte-level one
    tiny: TinyBackboneSize = field(default_factory=TinyBackboneSize)
    # transformers PI0Config as a dict; filled in at save time so a checkpoint rebuilds its
    # backbone without the original pretrained folder. Set by hand to build any size from scratch.
    backbone_config: dict[str, Any] | None = None
    state_in_prefix: bool = True  # also feed the state to the VLM as one prefix token
    num_inference_steps: int = 10  # flow-matching Euler steps at inference

    # --- StaKe auxiliary supervision (training only) ---
    use_stake: bool = True
    keyframe_dim: int = 8  # joint configuration at the next keyframe: J arm joints + gripper
    stage_loss_weight: float = 0.1
    keyframe_loss_weight: float = 0.1

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        if isinstance(self.tiny, dict):
            self.tiny = _from_dict(TinyBackboneSize, self.tiny, "tiny")
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the bad field and what is valid."""
        _one_of("obs_mode", self.obs_mode, OBS_MODES)
        _one_of("normalization", self.normalization, NORMALIZATION_MODES)
        if self.obs_mode == "rgb" and not self.cameras:
            raise ValueError("obs_mode='rgb' needs at least one camera in `cameras`")
        if self.obs_mode == "rgb" and self.env_state_dim:
            raise ValueError(
                "env_state_dim must be 0 in obs_mode='rgb': privileged simulator state is only "
                "given to state-mode policies"
            )
        for name in (
            "image_size",
            "state_dim",
            "action_dim",
            "chunk_size",
            "keyframe_dim",
            "max_instruction_tokens",
            "num_inference_steps",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.env_state_dim < 0:
            raise ValueError(f"env_state_dim must be >= 0, got {self.env_state_dim}")

    @property
    def total_state_dim(self) -> int:
        """Width of the state vector fed to the model: obs/state (+ obs/env_state)."""
        return self.state_dim + self.env_state_dim

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PI0PolicyConfig:
        expected = cls.__dataclass_fields__["type"].default
        if d.get("type", expected) != expected:
            raise ValueError(f"{cls.__name__} is for type={expected!r}, got type={d['type']!r}")
        return _from_dict(cls, d, cls.__name__)


@dataclass
class PI0TokensPolicyConfig(PI0PolicyConfig):
    """A pi0 VLM prefix with discrete action tokens (``type="pi0_tokens"``).

    Each (chunk step, action dimension) gets one learnable query token appended to the prefix;
    a linear head turns its hidden state into logits over ``num_bins`` uniform bins of the
    normalised action range [-1, 1] (quantile normalisation maps the data's 1st..99th percentile
    there, as OpenVLA does).
    """

    type: str = "pi0_tokens"
    normalization: str = "quantile"
    num_bins: int = 256

    def validate(self) -> None:
        super().validate()
        if self.normalization != "quantile":
            raise ValueError(
                "pi0_tokens bins actions over [-1, 1], which needs normalization='quantile' "
                f"(got {self.normalization!r})"
            )
        if not self.state_in_prefix:
            raise ValueError(
                "pi0_tokens reads actions off the VLM prefix only, so it needs state_in_prefix=True"
            )
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {self.num_bins}")


def _one_of(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {list(valid)}")


def _from_dict(cls: type, d: dict[str, Any], what: str):
    """Build dataclass ``cls`` from ``d``, naming unknown fields with a did-you-mean hint."""
    known = {f.name for f in fields(cls)}
    unknown = [k for k in d if k not in known]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, known, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"unknown field(s) for {what}: {', '.join(hints)}; valid: {sorted(known)}")
    return cls(**d)
