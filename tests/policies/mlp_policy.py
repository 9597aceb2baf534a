"""A small non-pi0 policy, for tests only: proof that training talks to policies through the
training protocol (:mod:`stare_robot.policies.protocol`) and nothing else.

MLP Gaussian chunk policy (``type="mlp_gaussian"``, state mode only)::

    h      = tanh-MLP(normalised [obs/state, obs/env_state])          (B, hidden)
    mean   = Linear(h) reshaped                                        (B, chunk, A), normalised
    a      ~ N(mean, diag(exp(log_std))^2), log_std (A,) learned or fixed
    log pi(a | o) = sum over steps and dims of log N(a; mean, std^2)   exact

A record is the sampled normalised chunk; ``predict`` returns the mean. Two auxiliary heads
(stage logit, keyframe) read ``h`` in ``training_losses`` only, as StaKe's do for pi0. The
checkpoint folder holds config.json, model.safetensors and normalization_stats.json. Register it
with ``register_policy(MLP_TYPE, MLPPolicyConfig, MLPGaussianPolicy)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from stare_robot.keys import (
    ACTION,
    ACTION_IS_PAD,
    ACTION_SPACE_EE_DELTA,
    INSTRUCTION,
    KEYFRAME_TARGET,
    LOSS,
    LOSS_ACTION,
    LOSS_KEYFRAME,
    LOSS_STAGE,
    OBS_ENV_STATE,
    OBS_STATE,
    STAGE_LABEL,
)
from stare_robot.policies.base import (
    ArraySpec,
    Observation,
    ObservationError,
    PolicyMetadata,
    check_observation,
)
from stare_robot.policies.normalize import NormalizationStats
from stare_robot.policies.protocol import (
    SampledChunks,
    SamplingSpec,
    ScoredRecords,
    TrainablePolicy,
)

MLP_TYPE = "mlp_gaussian"
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class MLPPolicyConfig:
    type: str = MLP_TYPE
    obs_mode: str = "state"  # the only mode: no camera encoder
    cameras: tuple[str, ...] = ()
    state_dim: int = 18
    env_state_dim: int = 0
    action_dim: int = 7
    chunk_size: int = 4
    hidden: int = 64
    init_log_std: float = -1.0
    learn_std: bool = True
    normalization: str = "mean_std"
    use_stake: bool = True
    keyframe_dim: int = 8
    stage_loss_weight: float = 0.1
    keyframe_loss_weight: float = 0.1
    action_space: str = ACTION_SPACE_EE_DELTA
    control_rate_hz: float = 20.0

    def validate(self) -> None:
        if self.type != MLP_TYPE or self.obs_mode != "state":
            raise ValueError(
                f"{MLP_TYPE} reads state only, got type={self.type!r} obs_mode={self.obs_mode!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cameras": list(self.cameras)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MLPPolicyConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {MLP_TYPE} config fields {sorted(unknown)}")
        d = dict(d)
        if "cameras" in d:
            d["cameras"] = tuple(d["cameras"])
        return cls(**d)


class MLPProcessor:
    """Collation and normalisation (no learnable parameters)."""

    def __init__(self, config: MLPPolicyConfig, stats: NormalizationStats):
        self.config, self.stats = config, stats
        self.state_keys = [OBS_STATE] + ([OBS_ENV_STATE] if config.env_state_dim else [])
        for key in [*self.state_keys, ACTION]:
            if key not in stats:
                raise ValueError(f"normalisation statistics lack {key!r}")

    def collate(self, observations: Sequence[Observation]) -> dict[str, Any]:
        batch: dict[str, Any] = {
            k: torch.as_tensor(np.stack([np.asarray(o[k]) for o in observations]))
            for k in self.state_keys
        }
        batch[INSTRUCTION] = [str(o.get(INSTRUCTION, "")) for o in observations]
        return batch

    def normalize_state(self, batch: Mapping[str, Any], device: torch.device) -> torch.Tensor:
        missing = [k for k in self.state_keys if k not in batch]
        if missing:
            raise ObservationError(f"batch is missing {missing}")
        mode = self.config.normalization
        parts = [
            self.stats[k].normalize(torch.as_tensor(batch[k]).float(), mode)
            for k in self.state_keys
        ]
        return torch.cat(parts, -1).to(device)

    def normalize_action(self, action: Any) -> torch.Tensor:
        return self.stats[ACTION].normalize(
            torch.as_tensor(action).float(), self.config.normalization
        )

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return self.stats[ACTION].unnormalize(action, self.config.normalization)


class MLPGaussianPolicy(nn.Module, TrainablePolicy):
    config_class = MLPPolicyConfig

    def __init__(self, config: MLPPolicyConfig, stats: NormalizationStats):
        super().__init__()
        config.validate()
        self.config = config
        self.processor = MLPProcessor(config, stats)
        c = config
        self.encoder = nn.Sequential(
            nn.Linear(c.state_dim + c.env_state_dim, c.hidden),
            nn.Tanh(),
            nn.Linear(c.hidden, c.hidden),
            nn.Tanh(),
        )
        self.mean_head = nn.Linear(c.hidden, c.chunk_size * c.action_dim)
        log_std = torch.full((c.action_dim,), float(c.init_log_std))
        if c.learn_std:
            self.log_std = nn.Parameter(log_std)
        else:
            self.register_buffer("log_std", log_std)
        self.stage_head = nn.Linear(c.hidden, 1) if c.use_stake else None
        self.keyframe_head = nn.Linear(c.hidden, c.keyframe_dim) if c.use_stake else None
        inputs = {OBS_STATE: ArraySpec((c.state_dim,), "float32")}
        if c.env_state_dim:
            inputs[OBS_ENV_STATE] = ArraySpec((c.env_state_dim,), "float32")
        self._metadata = PolicyMetadata(
            name=c.type,
            version="test",
            action_space=c.action_space,
            action_dim=c.action_dim,
            chunk_size=c.chunk_size,
            control_rate_hz=c.control_rate_hz,
            inputs=inputs,
            instruction_required=False,
        )

    # --- the network ---

    def _encode(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (features h (B, hidden), mean (B, chunk, A) normalised)."""
        h = self.encoder(self.processor.normalize_state(batch, self.device))
        return h, self.mean_head(h).unflatten(-1, (self.config.chunk_size, self.config.action_dim))

    def _step_log_density(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """(B, chunk) log N(x; mean, std^2) of each chunk step, summed over action dims."""
        z = (x - mean) / self.log_std.exp()
        return (-0.5 * z.pow(2) - self.log_std - HALF_LOG_2PI).sum(-1)

    # --- inference ---

    @property
    def metadata(self) -> PolicyMetadata:
        return self._metadata

    @property
    def device(self) -> torch.device:
        return self.log_std.device

    def predict(self, obs: Observation, *, seed: int | None = None) -> np.ndarray:
        check_observation(obs, self.metadata)
        with torch.no_grad():
            _, mean = self._encode(self.processor.collate([obs]))
            if seed is not None:
                gen = torch.Generator(device=self.device).manual_seed(seed)
                mean = mean + self.log_std.exp() * torch.randn(mean.shape, generator=gen)
            return self.processor.unnormalize_action(mean)[0].cpu().numpy().astype(np.float32)

    # --- training protocol ---

    @property
    def record_shape(self) -> tuple[int, ...]:
        return (self.config.chunk_size, self.config.action_dim)

    @property
    def value_feature_dim(self) -> int:
        return self.config.hidden

    @property
    def aux_heads(self) -> dict[str, nn.Module]:
        if self.stage_head is None:
            return {}
        return {"stage_head": self.stage_head, "keyframe_head": self.keyframe_head}

    def prefix_scoring_is_exact(self, spec: SamplingSpec) -> bool:
        return True  # the chunk steps are independent given the observation

    def sample(
        self, batch: Mapping[str, Any], generator: torch.Generator, spec: SamplingSpec
    ) -> SampledChunks:
        self.check_sampling(spec)
        with torch.no_grad():
            h, mean = self._encode(batch)
            x = mean + self.log_std.exp() * torch.randn(
                mean.shape, generator=generator, device=self.device
            )
            log_prob = self._step_log_density(x, mean)[:, : spec.scored_steps].sum(-1)
            return SampledChunks(self.processor.unnormalize_action(x), x, log_prob, h)

    def score(
        self, batch: Mapping[str, Any], records: torch.Tensor, spec: SamplingSpec
    ) -> ScoredRecords:
        self.check_sampling(spec)
        records = torch.as_tensor(records, device=self.device).float()
        if tuple(records.shape[1:]) != self.record_shape:
            raise ValueError(
                f"records have shape {tuple(records.shape)}, expected (B, {self.record_shape})"
            )
        h, mean = self._encode(batch)
        per_step = self._step_log_density(records, mean)
        if ACTION_IS_PAD in batch:
            per_step = per_step * (~torch.as_tensor(batch[ACTION_IS_PAD]).bool()).to(per_step)
        steps = per_step[:, : spec.scored_steps].shape[1]
        entropy = (
            (self.log_std + 0.5 + HALF_LOG_2PI).sum() * steps * torch.ones_like(per_step[:, 0])
        )
        return ScoredRecords(per_step[:, : spec.scored_steps].sum(-1), h, entropy)

    def value_features(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self._encode(batch)[0]

    def records_from_actions(self, actions: Any) -> torch.Tensor:
        return self.processor.normalize_action(actions)

    def training_losses(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Gaussian NLL of the normalised action chunk (mean over real steps and dims), plus the
        auxiliary stage / keyframe losses."""
        h, mean = self._encode(batch)
        action = torch.as_tensor(batch[ACTION], device=self.device).float()
        keep = torch.ones(action.shape[:2], device=self.device)
        if ACTION_IS_PAD in batch:
            keep = (~torch.as_tensor(batch[ACTION_IS_PAD], device=self.device).bool()).float()
        nll = -self._step_log_density(action, mean) / self.config.action_dim
        losses = {LOSS_ACTION: (nll * keep).sum() / keep.sum().clamp(min=1.0)}
        total = losses[LOSS_ACTION]
        if self.stage_head is not None:
            stage = torch.as_tensor(batch[STAGE_LABEL], device=self.device).float()
            keyframe = torch.as_tensor(batch[KEYFRAME_TARGET], device=self.device).float()
            losses[LOSS_STAGE] = F.binary_cross_entropy_with_logits(
                self.stage_head(h).squeeze(-1), stage
            )
            losses[LOSS_KEYFRAME] = F.l1_loss(self.keyframe_head(h), keyframe)
            total = (
                total
                + self.config.stage_loss_weight * losses[LOSS_STAGE]
                + self.config.keyframe_loss_weight * losses[LOSS_KEYFRAME]
            )
        losses[LOSS] = total
        return losses

    # --- checkpoints ---

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2))
        save_model(self, str(directory / WEIGHTS_FILE))
        self.processor.stats.save(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> MLPGaussianPolicy:
        directory = Path(directory)
        config = MLPPolicyConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
        policy = cls(config, NormalizationStats.load(directory))
        load_model(policy, str(directory / WEIGHTS_FILE), strict=True)
        return policy.eval()
