"""Discrete action tokens on the pi0 VLM prefix (``type="pi0_tokens"``), OpenVLA-style.

Every normalised action value in [-1, 1] falls in one of ``num_bins`` equal bins. The prefix gets
one learnable query token per (chunk step, action dimension); a shared linear head maps each
query's VLM output to logits over the bins. The dimensions are predicted in parallel (one VLM
pass, no autoregressive decoding), so the policy's distribution factorises over steps and
dimensions and its log-probability is exact:

    log pi(a | o) = sum over non-padded steps t and dims d of log softmax(logits[t, d])[bin(a[t, d])]

Prediction takes each dimension's most likely bin (argmax) and returns its centre; a seed samples
the bins instead. pi0's flow-matching action expert is not used and is dropped from the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stare_robot.keys import ACTION_IS_PAD
from stare_robot.policies.pi0.configuration_pi0 import PI0TokensPolicyConfig
from stare_robot.policies.pi0.modeling_pi0 import PI0Policy, Prefix, _masked_mean
from stare_robot.policies.pi0.processor_pi0 import PI0Inputs
from stare_robot.policies.protocol import SamplingSpec
from stare_robot.policies.stake import NUM_QUERIES


def bin_index(action: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Normalised actions (any shape) -> long bin indices in [0, num_bins); values outside
    [-1, 1] fall in the edge bins."""
    index = torch.floor((action + 1.0) / 2.0 * num_bins).long()
    return index.clamp(0, num_bins - 1)


def bin_centres(num_bins: int) -> torch.Tensor:
    """(num_bins,) centre of each bin of [-1, 1]."""
    return -1.0 + (2.0 * torch.arange(num_bins, dtype=torch.float32) + 1.0) / num_bins


class PI0TokensPolicy(PI0Policy):
    """pi0's PaliGemma prefix with per-dimension action-bin tokens."""

    config_class = PI0TokensPolicyConfig
    config: PI0TokensPolicyConfig

    def _drop_unused_backbone_parts(self) -> None:
        # Only the VLM prefix is used; the Gemma action expert and its projections would be dead
        # weight in every checkpoint (300M parameters at pi0 scale).
        del self.backbone.model.dit
        del self.backbone.embed_action_time
        del self.backbone.action_out_proj

    def _init_action_head(self, hidden: int) -> None:
        num_queries = self.config.chunk_size * self.config.action_dim
        self.action_queries = nn.Parameter(torch.randn(num_queries, hidden) * 0.02)
        self.bin_head = nn.Linear(hidden, self.config.num_bins)
        self.register_buffer("bin_values", bin_centres(self.config.num_bins), persistent=False)

    def _query_tokens(self, batch_size: int) -> list[torch.Tensor]:
        return super()._query_tokens(batch_size) + [
            self.action_queries[None].expand(batch_size, -1, -1)
        ]

    def _logits(self, prefix: Prefix) -> torch.Tensor:
        """Prefix -> (B, chunk, A, num_bins) logits from the action query positions."""
        start = prefix.queries_start + (NUM_QUERIES if self.stake is not None else 0)
        num_queries = self.action_queries.shape[0]
        hidden = prefix.hidden[:, start : start + num_queries]
        logits = self.bin_head(hidden)
        return logits.unflatten(1, (self.config.chunk_size, self.config.action_dim))

    def _action_loss(
        self, prefix: Prefix, inputs: PI0Inputs, action: torch.Tensor, is_pad: torch.Tensor
    ) -> torch.Tensor:
        """Cross-entropy of the data's bins, mean over action dims and non-padded steps."""
        logits = self._logits(prefix)
        target = bin_index(action, self.config.num_bins)
        nll = F.cross_entropy(logits.flatten(0, 2), target.flatten(), reduction="none")
        return _masked_mean(nll.view(action.shape).mean(-1), ~is_pad)

    def _sample_normalized(
        self, prefix: Prefix, inputs: PI0Inputs, generator: torch.Generator | None
    ) -> torch.Tensor:
        return self._sample_bins(self._logits(prefix), generator)

    def _sample_bins(self, logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """(B, chunk, A, num_bins) logits -> (B, chunk, A) bin centres: argmax, or sampled."""
        if generator is None:
            index = logits.argmax(-1)
        else:
            probs = logits.softmax(-1).flatten(0, -2)
            index = torch.multinomial(probs, 1, generator=generator).view(logits.shape[:-1])
        return self.bin_values[index]

    def action_logits(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Training-format batch -> (B, chunk, action_dim, num_bins) bin logits."""
        inputs = self.processor.model_inputs(batch, self.device)
        return self._logits(self._run_prefix(inputs))

    # --- training protocol: records are normalised chunks of bin centres, scored exactly ---

    @property
    def record_shape(self) -> tuple[int, ...]:
        return (self.config.chunk_size, self.config.action_dim)

    @property
    def likelihood_uses_noise_std(self) -> bool:
        return False

    def prefix_scoring_is_exact(self, spec: SamplingSpec) -> bool:
        return True  # steps and dimensions are independent given the observation

    def records_from_actions(self, actions: Any) -> torch.Tensor:
        """Normalised robot-unit chunks: a demonstration's actions are scored exactly."""
        return self.processor.normalize_action(actions)

    def _check_records(self, records: Any) -> torch.Tensor:
        actions = torch.as_tensor(records, device=self.device).float()
        want = self.record_shape
        if actions.ndim != 3 or tuple(actions.shape[1:]) != want:
            raise ValueError(
                f"actions have shape {tuple(actions.shape)}, expected "
                f"(B, chunk_size, action_dim) = (B, {want[0]}, {want[1]})"
            )
        return actions

    def _sample_records(
        self, prefix: Prefix, inputs: PI0Inputs, generator: torch.Generator, spec: SamplingSpec
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self._logits(prefix)
        normalized = self._sample_bins(logits, generator)
        log_prob = self.step_log_probs(logits, normalized)[:, : spec.scored_steps].sum(-1)
        return normalized, normalized, log_prob

    def _score_records(
        self, prefix: Prefix, inputs: PI0Inputs, records: torch.Tensor, spec: SamplingSpec,
        batch: Mapping[str, Any],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact log pi(records | obs) (module docstring; ``action_is_pad`` steps excluded) and
        the entropy of the bins, both over the first ``scored_steps`` chunk steps."""
        logits = self._logits(prefix)
        per_step = self.step_log_probs(logits, records)
        if ACTION_IS_PAD in batch:
            keep = ~torch.as_tensor(batch[ACTION_IS_PAD], device=self.device).bool()
            per_step = per_step * keep.to(per_step.dtype)
        scored = slice(0, spec.scored_steps)  # None: the whole chunk
        # the entropy reads its own logits pass: one shared pass would sum the two gradients in
        # another order and change fixed-seed PPO numbers in the last float bits
        logp = self._logits(prefix).log_softmax(-1)
        entropy = -(logp.exp() * logp).sum(-1)[:, scored].sum((1, 2))
        return per_step[:, scored].sum(-1), entropy

    def step_log_probs(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(B, chunk, A, num_bins) logits and (B, chunk, A) normalised actions -> (B, chunk)
        log-probability of each chunk step (summed over action dims)."""
        index = bin_index(actions, self.config.num_bins)
        per_value = logits.log_softmax(-1).gather(-1, index[..., None]).squeeze(-1)
        return per_value.sum(-1)
