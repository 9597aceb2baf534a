"""The policy plus a value head on its backbone: what PPO samples from and trains.

One VLM prefix pass per batch serves both: the action head samples (or scores) a chunk from it,
the value head reads the same prefix states. The value head sees the prefix *detached*: it is
fitted with its own, larger learning rate (paper: policy 1e-4, value 3e-3) on features the
policy loss shapes, and its regression gradients never move the deployed policy's weights. The
deployed checkpoint therefore stays a plain policy checkpoint; the value head is saved beside it
(``value_head.safetensors``) for resuming.

Likelihoods are those of :mod:`stare_robot.policies.pi0.likelihood_pi0`: exact for the token
head, the noisy denoising chain's log-density for the flow head (sampling must then use the noisy
sampler with the same ``noise_std``). PPO scores only the chunk steps a rollout executes
(``scored_steps``), so its ratios carry no noise from actions that never reached the robot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stare_robot.policies.base import Observation
from stare_robot.policies.pi0.likelihood_pi0 import (
    check_scored_steps,
    is_token_policy,
    records_log_prob,
    sample_scored_records,
)

VALUE_HEAD_FILE = "value_head.safetensors"


class ValueHead(nn.Module):
    """V(o): masked mean of the prefix's last hidden states -> LayerNorm -> MLP -> scalar."""

    def __init__(self, hidden_size: int, width: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(hidden_size), nn.Linear(hidden_size, width), nn.Tanh(), nn.Linear(width, 1)
        )

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, D), mask (B, L) 1 = real token -> (B,) values."""
        keep = mask[..., None].to(hidden.dtype)
        pooled = (hidden.detach() * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.net(pooled).squeeze(-1)

    def save(self, directory: Path | str) -> Path:
        from safetensors.torch import save_model

        path = Path(directory) / VALUE_HEAD_FILE
        save_model(self, str(path))
        return path

    def load(self, directory: Path | str) -> None:
        from safetensors.torch import load_model

        load_model(self, str(Path(directory) / VALUE_HEAD_FILE), strict=True)


@dataclass
class ActOutput:
    """A sampled batch: robot-unit actions (B, chunk, A) float32, likelihood records (B, ...),
    their log-probabilities (B,) and the values of the observations (B,)."""

    actions: np.ndarray
    records: np.ndarray
    log_probs: np.ndarray
    values: np.ndarray


class ActorCritic(nn.Module):
    """A pi0 policy (either head) and a :class:`ValueHead` on its prefix."""

    def __init__(
        self,
        policy: nn.Module,
        noise_std: float,
        noisy_steps: int | None = None,
        value_width: int = 128,
        scored_steps: int | None = None,
    ):
        super().__init__()
        check_scored_steps(policy, noisy_steps, scored_steps)
        self.policy = policy
        self.noise_std = float(noise_std)
        self.noisy_steps = noisy_steps  # flow head: denoising steps that inject noise (None: all)
        self.scored_steps = scored_steps  # chunk steps the likelihood covers (None: the whole chunk)
        hidden = policy.backbone.config.vlm_config.text_config.hidden_size
        self.value_head = ValueHead(hidden, value_width)

    @property
    def is_token_head(self) -> bool:
        return is_token_policy(self.policy)

    def _prefix(self, batch: dict[str, Any]):
        inputs = self.policy.processor.model_inputs(batch, self.policy.device)
        return self.policy._run_prefix(inputs), inputs

    @torch.no_grad()
    def act(self, observations: Sequence[Observation], generator: torch.Generator) -> ActOutput:
        """Sample one chunk per observation (the rollout policy) with its log-prob and value."""
        batch = self.policy.processor.collate(list(observations))
        prefix, inputs = self._prefix(batch)
        values = self.value_head(prefix.hidden, prefix.mask)
        records, normalized, log_probs = sample_scored_records(
            self.policy, prefix, inputs, generator, self.noise_std, self.noisy_steps,
            self.scored_steps,
        )
        actions = self.policy.processor.unnormalize_action(normalized)
        return ActOutput(
            actions.cpu().numpy().astype(np.float32),
            records.cpu().numpy().astype(np.float32),
            log_probs.cpu().numpy().astype(np.float64),
            values.cpu().numpy().astype(np.float64),
        )

    @torch.no_grad()
    def values(self, observations: Sequence[Observation]) -> np.ndarray:
        """(B,) values of raw observations."""
        prefix, _ = self._prefix(self.policy.processor.collate(list(observations)))
        return self.value_head(prefix.hidden, prefix.mask).cpu().numpy().astype(np.float64)

    def evaluate(
        self, batch: dict[str, Any], records: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Differentiable (log-probs (B,), values (B,), entropy (B,) or None) of recorded samples.

        The entropy is the token head's (summed over the chunk's bins); the flow chain's
        transitions have a fixed variance, so its entropy does not depend on the weights (None)."""
        prefix, inputs = self._prefix(batch)
        values = self.value_head(prefix.hidden, prefix.mask)
        log_probs = records_log_prob(
            self.policy, prefix, inputs, records, self.noise_std, self.noisy_steps,
            self.scored_steps,
        )
        entropy = None
        if self.is_token_head:
            logp = self.policy._logits(prefix).log_softmax(-1)
            entropy = -(logp.exp() * logp).sum(-1)[:, : self.scored_steps].sum((1, 2))
        return log_probs, values, entropy
