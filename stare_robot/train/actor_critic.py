"""The policy plus a value head on its backbone: what PPO samples from and trains.

One encoder (VLM prefix) pass per batch serves both: the policy samples (or scores) a chunk from
it and returns value features of the same pass (``sample`` / ``score`` of the training protocol,
:mod:`stare_robot.policies.protocol`), which the value head reads. The value head sees the features
*detached*: it is
fitted with its own, larger learning rate (paper: policy 1e-4, value 3e-3) on features the
policy loss shapes, and its regression gradients never move the deployed policy's weights. The
deployed checkpoint therefore stays a plain policy checkpoint; the value head is saved beside it
(``value_head.safetensors``) for resuming.

Likelihoods are the policy's record log-likelihoods (for pi0: exact for the token head, the noisy
denoising chain's log-density for the flow head, sampled with the same ``noise_std``). PPO scores
only the chunk steps a rollout executes (``scored_steps``), so its ratios carry no noise from
actions that never reached the robot.
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
from stare_robot.policies.protocol import SamplingSpec, TrainablePolicy

VALUE_HEAD_FILE = "value_head.safetensors"


class ValueHead(nn.Module):
    """V(o): the policy's value features (for pi0: the masked mean of the prefix's last hidden
    states) -> LayerNorm -> MLP -> scalar."""

    def __init__(self, feature_dim: int, width: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(feature_dim), nn.Linear(feature_dim, width), nn.Tanh(), nn.Linear(width, 1)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> (B,) values; no gradient flows back into the policy."""
        return self.net(features.detach()).squeeze(-1)

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
    """A trainable policy (:class:`~stare_robot.policies.protocol.TrainablePolicy`) and a
    :class:`ValueHead` on its value features."""

    def __init__(
        self,
        policy: TrainablePolicy,
        noise_std: float,
        noisy_steps: int | None = None,
        value_width: int = 128,
        scored_steps: int | None = None,
    ):
        super().__init__()
        self.sampling = SamplingSpec(float(noise_std), noisy_steps, scored_steps)
        policy.check_sampling(self.sampling)
        self.policy = policy
        self.noise_std = float(noise_std)
        self.noisy_steps = noisy_steps  # flow head: denoising steps that inject noise (None: all)
        self.scored_steps = scored_steps  # chunk steps the likelihood covers (None: the whole chunk)
        self.value_head = ValueHead(policy.value_feature_dim, value_width)

    @torch.no_grad()
    def act(self, observations: Sequence[Observation], generator: torch.Generator) -> ActOutput:
        """Sample one chunk per observation (the rollout policy) with its log-prob and value."""
        batch = self.policy.processor.collate(list(observations))
        out = self.policy.sample(batch, generator, self.sampling)
        values = self.value_head(out.features)
        return ActOutput(
            out.actions.cpu().numpy().astype(np.float32),
            out.records.cpu().numpy().astype(np.float32),
            out.log_prob.cpu().numpy().astype(np.float64),
            values.cpu().numpy().astype(np.float64),
        )

    @torch.no_grad()
    def values(self, observations: Sequence[Observation]) -> np.ndarray:
        """(B,) values of raw observations."""
        batch = self.policy.processor.collate(list(observations))
        features = self.policy.value_features(batch)
        return self.value_head(features).cpu().numpy().astype(np.float64)

    def evaluate(
        self, batch: dict[str, Any], records: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Differentiable (log-probs (B,), values (B,), entropy (B,) or None) of recorded samples,
        from one encoder pass. The entropy is None where the policy's does not depend on its
        weights (pi0's flow chain: its transitions have a fixed variance)."""
        scored = self.policy.score(batch, records, self.sampling)
        return scored.log_prob, self.value_head(scored.features), scored.entropy
