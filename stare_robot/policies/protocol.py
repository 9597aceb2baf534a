"""The training protocol: what TPO, PPO, the critic and the rollout collectors need of a policy.

Training code talks to a policy only through these names, so a new backbone is a policy folder
plus a registry line (:func:`stare_robot.policies.register_policy`), checked by
``tests/policies/test_conformance.py``. A trainable policy is a ``torch.nn.Module`` and a
:class:`~stare_robot.policies.base.Policy` (``predict``, ``metadata``) with:

    config                          dataclass with ``type`` and ``to_dict()``
    device                          torch.device of its parameters
    processor.collate(observations) raw single-step observations -> a batch (obs keys with a batch
                                    axis, ``instruction`` list): the format of every method below
    processor.normalize_action(a)   robot-unit actions (..., A) -> normalised (the training batch's)
    processor.unnormalize_action(a) the inverse
    training_losses(batch)          {"loss": total, ...} scalar losses of a training batch
                                    (SFT + auxiliary heads)
    save_pretrained(dir) / from_pretrained(dir)   a checkpoint folder with config.json
    aux_heads                       {name: module} used by training_losses only, never by inference

    record_shape                    per-sample shape of a sampling record (what collection stores)
    value_feature_dim               F, the width of :meth:`value_features`
    likelihood_uses_noise_std       whether ``SamplingSpec.noise_std`` enters the likelihood
    prefix_scoring_is_exact(spec)   whether scoring only the first ``scored_steps`` chunk steps is
                                    their exact marginal log-likelihood
    check_sampling(spec)            ValueError for settings that would not give an exact likelihood
    sample(batch, generator, spec) -> SampledChunks   (no gradients)
    score(batch, records, spec)    -> ScoredRecords   (differentiable)
    log_prob(batch, records, spec=None) -> (B,)       ``score(...).log_prob``
    value_features(batch)          -> (B, F)          the features alone (bootstrap values)
    records_from_actions(actions)  -> records or None: records of plain robot-unit action chunks
                                    (demonstrations), None where the likelihood needs the
                                    sampler's own record (the flow head's denoising chain)

A **record** is what the likelihood of one sampled chunk needs: for an explicit distribution the
normalised chunk itself (exact log-likelihood), for pi0's flow head the whole noisy denoising
chain (see :mod:`stare_robot.policies.pi0.likelihood_pi0`). ``sample`` and ``score`` each run the
policy's observation encoder (the VLM prefix) once and return the value-head features of that same
pass, so PPO's update gets the likelihood, the entropy and the value from one prefix pass.

:func:`sample_for_rollout` (one observation, one seed) is what the rollout collector calls.
This module imports no torch at import time (the CLIs read :data:`DEFAULT_NOISE_STD` cheaply).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stare_robot.policies.base import Observation, Policy, check_observation

if TYPE_CHECKING:
    import numpy as np
    import torch

Batch = Mapping[str, Any]

# sigma of a flow head's noise-injected sampler, in normalised action units (data std = 1);
# the rollout collector's default (PPO sets its own)
DEFAULT_NOISE_STD = 0.1


@dataclass(frozen=True)
class SamplingSpec:
    """How chunks are sampled and scored (the same settings at sampling and at scoring).

    noise_std: sigma of a flow head's noise-injected sampler (normalised units); a policy with an
        explicit action distribution ignores it (``likelihood_uses_noise_std`` is False).
    noisy_steps: flow head only: denoising steps that inject noise, the last ``noisy_steps`` of
        them starting from ``predict()``'s zero noise (None: every step, from random noise).
    scored_steps: the likelihood covers the chunk's first ``scored_steps`` steps only (None: the
        whole chunk); allowed where :meth:`TrainablePolicy.prefix_scoring_is_exact`.
    """

    noise_std: float = DEFAULT_NOISE_STD
    noisy_steps: int | None = None
    scored_steps: int | None = None


@dataclass
class SampledChunks:
    """A sampled batch: ``actions`` (B, chunk, A) in robot units, ``records`` (B, *record_shape),
    ``log_prob`` (B,) = ``score(batch, records, spec).log_prob`` at the sampling weights,
    ``features`` (B, F) value-head features of the same encoder pass. Tensors, no gradients."""

    actions: torch.Tensor
    records: torch.Tensor
    log_prob: torch.Tensor
    features: torch.Tensor


@dataclass
class ScoredRecords:
    """``log_prob`` (B,) differentiable log-likelihood of the records, ``features`` (B, F) of the
    same encoder pass (a value head should detach them), ``entropy`` (B,) of the policy's
    distribution over the scored chunk steps, or None where it does not depend on the weights."""

    log_prob: torch.Tensor
    features: torch.Tensor
    entropy: torch.Tensor | None


class TrainablePolicy(Policy):
    """The abstract training protocol (module docstring). Subclasses are ``nn.Module`` s."""

    config: Any
    processor: Any

    @property
    @abc.abstractmethod
    def device(self) -> torch.device: ...

    @property
    @abc.abstractmethod
    def record_shape(self) -> tuple[int, ...]:
        """Per-sample shape of a sampling record."""

    @property
    @abc.abstractmethod
    def value_feature_dim(self) -> int:
        """Width F of the value-head features."""

    @property
    def likelihood_uses_noise_std(self) -> bool:
        """True when the records' log-likelihood depends on ``SamplingSpec.noise_std`` (so data
        sampled with one sigma must be scored with the same)."""
        return False

    @property
    def aux_heads(self) -> dict[str, Any]:
        """Modules only ``training_losses`` may call (e.g. StaKe's stage and keyframe heads)."""
        return {}

    @abc.abstractmethod
    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]: ...

    @abc.abstractmethod
    def prefix_scoring_is_exact(self, spec: SamplingSpec) -> bool:
        """Whether the likelihood of a chunk's first steps alone is their exact marginal under
        the sampler ``spec`` describes (chunk steps independent given the observation)."""

    def check_sampling(self, spec: SamplingSpec) -> None:
        """Raise ValueError for sampler settings this policy cannot score exactly."""
        if spec.scored_steps is None:
            return
        chunk = self.metadata.chunk_size
        if not 1 <= spec.scored_steps <= chunk:
            raise ValueError(
                f"scored_steps must be in 1..chunk_size={chunk}, got {spec.scored_steps}"
            )
        if not self.prefix_scoring_is_exact(spec):
            raise ValueError(
                f"scoring only the first {spec.scored_steps} chunk steps is not an exact "
                f"likelihood for a {self.config.type!r} policy sampled with {spec}"
            )

    @abc.abstractmethod
    def sample(
        self, batch: Batch, generator: torch.Generator, spec: SamplingSpec
    ) -> SampledChunks:
        """Sample one chunk per observation of ``batch`` with ``generator`` (no gradients; the
        caller sets train/eval mode)."""

    @abc.abstractmethod
    def score(self, batch: Batch, records: torch.Tensor, spec: SamplingSpec) -> ScoredRecords:
        """Differentiable log-likelihood of ``records`` (B, *record_shape) sampled under ``spec``;
        an ``action_is_pad`` (B, chunk) entry of ``batch`` drops padded chunk steps where the
        likelihood factorises over steps."""

    def log_prob(
        self, batch: Batch, records: torch.Tensor, spec: SamplingSpec | None = None
    ) -> torch.Tensor:
        """(B,) differentiable log-likelihood of sampling records (:meth:`score`)."""
        return self.score(batch, records, spec if spec is not None else SamplingSpec()).log_prob

    @abc.abstractmethod
    def value_features(self, batch: Batch) -> torch.Tensor:
        """(B, F) value-head features of the observations (as ``sample`` / ``score`` give)."""

    @abc.abstractmethod
    def records_from_actions(self, actions: np.ndarray | torch.Tensor) -> torch.Tensor | None:
        """Records of robot-unit action chunks (B, chunk, A), or None if this policy can only
        score records its own sampler produced."""


def sample_for_rollout(
    policy: TrainablePolicy, obs: Observation, seed: int, noise_std: float = DEFAULT_NOISE_STD
) -> tuple[np.ndarray, np.ndarray]:
    """One sampled chunk for a rollout: (action chunk (chunk, A) float32 in robot units, record
    (*record_shape) float32). The same ``seed`` gives the same sample; eval mode while sampling."""
    import numpy as np
    import torch

    check_observation(obs, policy.metadata)
    batch = policy.processor.collate([obs])
    generator = torch.Generator(device=policy.device).manual_seed(int(seed))
    was_training = policy.training
    policy.eval()
    try:
        out = policy.sample(batch, generator, SamplingSpec(noise_std=noise_std))
    finally:
        policy.train(was_training)
    return (
        out.actions[0].cpu().numpy().astype(np.float32),
        out.records[0].cpu().numpy().astype(np.float32),
    )
