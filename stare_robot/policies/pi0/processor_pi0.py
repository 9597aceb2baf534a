"""Turns observations / training batches into pi0 model inputs, and model outputs into actions.

* images: uint8 (B, H, W, 3) -> float (B, cameras, 3, h, w) in [-1, 1] at the backbone's size;
* instruction: tokenised with the checkpoint's tokenizer (byte-level ByT5 when the backbone
  comes without one; PaliGemma's vocabulary cannot be downloaded here), padded to
  ``max_instruction_tokens``;
* state (obs/state, plus obs/env_state in state mode) and action: normalised with statistics from
  the data (:mod:`stare_robot.policies.normalize`).

Saved with a checkpoint: the tokenizer files and ``normalization_stats.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stare_robot.keys import ACTION, INSTRUCTION, OBS_ENV_STATE, OBS_STATE, obs_rgb
from stare_robot.policies.base import ArraySpec, Observation, ObservationError
from stare_robot.policies.normalize import NormalizationStats
from stare_robot.policies.pi0.configuration_pi0 import PI0PolicyConfig

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"


@dataclass
class PI0Inputs:
    """A batch of model inputs (B = batch, C = cameras, L = instruction tokens)."""

    pixel_values: torch.Tensor | None  # (B, C, 3, h, w) float32 in [-1, 1]; None in state mode
    camera_mask: torch.Tensor | None  # (B, C) bool, True where the camera image is present
    input_ids: torch.Tensor  # (B, L) long instruction tokens
    text_mask: torch.Tensor  # (B, L) long, 1 = token, 0 = padding
    state: torch.Tensor  # (B, total_state_dim) float32, normalised


def input_specs(config: PI0PolicyConfig) -> dict[str, ArraySpec]:
    """Exactly the observation arrays a policy with ``config`` reads."""
    specs: dict[str, ArraySpec] = {}
    if config.obs_mode == "rgb":
        for cam in config.cameras:
            specs[obs_rgb(cam)] = ArraySpec((config.image_size, config.image_size, 3), "uint8")
    specs[OBS_STATE] = ArraySpec((config.state_dim,), "float32")
    if config.obs_mode == "state" and config.env_state_dim:
        specs[OBS_ENV_STATE] = ArraySpec((config.env_state_dim,), "float32")
    return specs


def load_tokenizer(config: PI0PolicyConfig, checkpoint_dir: str | Path | None = None):
    """The tokenizer of a saved policy, of the pretrained backbone, or a byte-level default."""
    from transformers import AutoTokenizer, ByT5Tokenizer

    for source in (checkpoint_dir, config.tokenizer_path, config.pretrained_path):
        if source is not None and (Path(source) / TOKENIZER_CONFIG_FILE).exists():
            return AutoTokenizer.from_pretrained(str(source))
    if config.tokenizer_path is not None:
        raise FileNotFoundError(
            f"tokenizer_path={config.tokenizer_path!r} has no {TOKENIZER_CONFIG_FILE}"
        )
    return ByT5Tokenizer()  # needs no vocabulary file


def check_stats(config: PI0PolicyConfig, stats: NormalizationStats) -> None:
    """The data's statistics must cover every normalised feature with the config's widths."""
    expected = {
        ACTION: ("action_dim", config.action_dim),
        OBS_STATE: ("state_dim", config.state_dim),
    }
    if config.obs_mode == "state" and config.env_state_dim:
        expected[OBS_ENV_STATE] = ("env_state_dim", config.env_state_dim)
    for key, (field_name, width) in expected.items():
        if key not in stats:
            raise ValueError(
                f"normalisation statistics lack {key!r}, which this policy needs; "
                f"they cover {sorted(stats.features)}"
            )
        if stats.dim(key) != width:
            raise ValueError(
                f"{key!r} dimension mismatch: the data's statistics have {stats.dim(key)} values "
                f"but the policy config says {field_name}={width}"
            )


class PI0Processor:
    """Pre/post-processing of one pi0 policy (no learnable parameters)."""

    def __init__(
        self,
        config: PI0PolicyConfig,
        stats: NormalizationStats,
        tokenizer: Any,
        model_image_size: int,
    ):
        check_stats(config, stats)
        self.config = config
        self.stats = stats
        self.tokenizer = tokenizer
        self.model_image_size = model_image_size
        self._token_cache: dict[str, tuple[list[int], list[int]]] = {}

    # --- observations -> batch -> model inputs ---

    def collate(self, observations: Sequence[Observation]) -> dict[str, Any]:
        """Raw single-step observations -> a batch dict in the training-batch format (obs keys only)."""
        batch: dict[str, Any] = {
            key: torch.as_tensor(np.stack([np.asarray(o[key]) for o in observations]))
            for key in input_specs(self.config)
        }
        batch[INSTRUCTION] = [str(o[INSTRUCTION]) for o in observations]
        return batch

    def model_inputs(
        self, batch: Mapping[str, Any], device: torch.device | None = None
    ) -> PI0Inputs:
        """A batch dict (obs keys with a batch axis, raw values) -> :class:`PI0Inputs`."""
        _require(batch, [*input_specs(self.config), INSTRUCTION])
        instructions = batch[INSTRUCTION]
        if isinstance(instructions, str):
            raise ObservationError(
                f"batch[{INSTRUCTION!r}] must be a list of strings, got one string"
            )
        input_ids, text_mask = self.tokenize(list(instructions))
        state = self.normalize_state(batch)
        pixel_values = camera_mask = None
        if self.config.obs_mode == "rgb":
            pixel_values = torch.stack(
                [self.image_transform(batch[obs_rgb(cam)]) for cam in self.config.cameras], dim=1
            )
            camera_mask = torch.ones(pixel_values.shape[:2], dtype=torch.bool)
        inputs = PI0Inputs(pixel_values, camera_mask, input_ids, text_mask, state)
        if device is not None:
            inputs = PI0Inputs(
                *(None if t is None else t.to(device) for t in vars(inputs).values())
            )
        return inputs

    def image_transform(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float32 (B, 3, h, w) in [-1, 1] at the backbone's image size."""
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ObservationError(
                f"camera images must be uint8 (B, H, W, 3), got {images.dtype} {tuple(images.shape)}"
            )
        x = images.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-2:] != (self.model_image_size, self.model_image_size):
            size = (self.model_image_size, self.model_image_size)
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return x * 2.0 - 1.0  # SigLIP's normalisation: mean 0.5, std 0.5

    def tokenize(self, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Instructions -> (B, L) token ids and (B, L) mask, L = max_instruction_tokens."""
        ids, masks = zip(*(self._tokenize_one(text) for text in instructions))
        return torch.tensor(ids, dtype=torch.long), torch.tensor(masks, dtype=torch.long)

    def _tokenize_one(self, text: str) -> tuple[list[int], list[int]]:
        if text not in self._token_cache:
            enc = self.tokenizer(
                text,
                padding="max_length",
                max_length=self.config.max_instruction_tokens,
                truncation=True,
            )
            if len(self._token_cache) > 10_000:  # a training set has few distinct instructions
                self._token_cache.clear()
            self._token_cache[text] = (list(enc["input_ids"]), list(enc["attention_mask"]))
        return self._token_cache[text]

    # --- normalisation ---

    def normalize_state(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """(B, state_dim [+ env_state_dim]) normalised state vector fed to the model."""
        keys = [OBS_STATE] + ([OBS_ENV_STATE] if OBS_ENV_STATE in input_specs(self.config) else [])
        mode = self.config.normalization
        parts = [self.stats[k].normalize(torch.as_tensor(batch[k]).float(), mode) for k in keys]
        return torch.cat(parts, dim=-1)

    def normalize_action(self, action: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Robot-space actions (..., action_dim) -> normalised, as the training batch wants."""
        action = torch.as_tensor(action).float()
        self._check_action_dim(action)
        return self.stats[ACTION].normalize(action, self.config.normalization)

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        self._check_action_dim(action)
        return self.stats[ACTION].unnormalize(action, self.config.normalization)

    def _check_action_dim(self, action: torch.Tensor) -> None:
        if action.shape[-1] != self.config.action_dim:
            raise ValueError(
                f"actions have {action.shape[-1]} dimensions, the policy's action_dim is "
                f"{self.config.action_dim}"
            )

    # --- checkpoint files ---

    def save_pretrained(self, directory: str | Path) -> None:
        self.stats.save(directory)
        self.tokenizer.save_pretrained(str(directory))


def _require(batch: Mapping[str, Any], keys: list[str]) -> None:
    for key in keys:
        if key not in batch:
            raise ObservationError(
                f"batch is missing {key!r}, which this policy needs; it needs {keys}, "
                f"got {sorted(batch)}"
            )
