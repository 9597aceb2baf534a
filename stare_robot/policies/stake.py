"""StaKe: stage and keyframe auxiliary supervision through two learnable query tokens.

The two query tokens are appended to a backbone's input sequence (they stay there at inference,
so the deployed network is the one that was trained). During training only, two small heads read
the backbone's output at those positions:

* the **stage head** on query 0: one logit, BCE against motion (0) vs skill (1);
* the **keyframe head** on query 1: L1 to the robot joint configuration at the next gripper
  keyframe.

Inference code must never call the heads; ``policy.predict`` only uses :attr:`StaKe.queries`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_QUERIES = 2
STAGE_QUERY, KEYFRAME_QUERY = 0, 1


class StaKe(nn.Module):
    """Learnable query tokens plus the two training-only heads."""

    def __init__(self, hidden_size: int, keyframe_dim: int):
        super().__init__()
        self.keyframe_dim = keyframe_dim
        self.queries = nn.Parameter(torch.randn(NUM_QUERIES, hidden_size) * 0.02)
        self.stage_head = nn.Linear(hidden_size, 1)
        self.keyframe_head = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, keyframe_dim)
        )

    def query_tokens(self, batch_size: int) -> torch.Tensor:
        """(B, 2, D) query embeddings to append to the input sequence."""
        return self.queries[None].expand(batch_size, -1, -1)

    def losses(
        self,
        query_hidden: torch.Tensor,
        stage_label: torch.Tensor,
        keyframe_target: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage BCE and keyframe L1, each a scalar.

        query_hidden: (B, 2, D) backbone outputs at the query positions.
        stage_label: (B,) float, 0 = motion, 1 = skill.
        keyframe_target: (B, keyframe_dim) joint configuration at the next keyframe.
        """
        if keyframe_target.shape[-1] != self.keyframe_dim:
            raise ValueError(
                f"keyframe_target has {keyframe_target.shape[-1]} values per sample but the "
                f"policy's keyframe head predicts keyframe_dim={self.keyframe_dim}"
            )
        stage_logit = self.stage_head(query_hidden[:, STAGE_QUERY]).squeeze(-1)
        stage_loss = F.binary_cross_entropy_with_logits(stage_logit, stage_label.to(stage_logit))
        keyframe = self.keyframe_head(query_hidden[:, KEYFRAME_QUERY])
        keyframe_loss = F.l1_loss(keyframe, keyframe_target.to(keyframe))
        return stage_loss, keyframe_loss
