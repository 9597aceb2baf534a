"""Normalisation statistics of states and actions, computed from data and saved with a checkpoint.

Two modes, both per dimension:

* ``mean_std``:  x' = (x - mean) / std
* ``quantile``:  x' = 2 (x - q01) / (q99 - q01) - 1   (the data's 1st..99th percentile -> [-1, 1])

Statistics are keyed by :mod:`stare_robot.keys` names (``obs/state``, ``obs/env_state``,
``action``) and saved as JSON: float32 values written as Python floats read back bit-exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# A dimension that never varies in the data (e.g. a locked joint) would divide by ~0; its scale is
# floored so that an unseen value at test time stays finite.
MIN_SCALE = 1e-3
STAT_NAMES = ("mean", "std", "q01", "q99")


@dataclass(frozen=True)
class FeatureStats:
    """Per-dimension statistics of one feature; each array is float32 of shape (D,)."""

    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray
    q99: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def from_array(cls, values: np.ndarray) -> FeatureStats:
        """Statistics of ``values`` shaped (N, D) (any leading axes are flattened)."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim < 1 or x.size == 0:
            raise ValueError(f"need a non-empty (N, D) array to compute statistics, got {x.shape}")
        x = x.reshape(-1, x.shape[-1])
        return cls(
            mean=x.mean(0).astype(np.float32),
            std=x.std(0).astype(np.float32),
            q01=np.quantile(x, 0.01, axis=0).astype(np.float32),
            q99=np.quantile(x, 0.99, axis=0).astype(np.float32),
        )

    def _shift_scale(self, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """x' = (x - shift) / scale for either mode."""
        if mode == "mean_std":
            return self.mean, np.maximum(self.std, MIN_SCALE)
        if mode == "quantile":
            return (self.q01 + self.q99) / 2, np.maximum((self.q99 - self.q01) / 2, MIN_SCALE)
        raise ValueError(f"unknown normalization mode {mode!r}; choose 'mean_std' or 'quantile'")

    def normalize(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        """``x`` (..., D) -> normalised (..., D), same dtype/device."""
        shift, scale = (torch.as_tensor(a, device=x.device) for a in self._shift_scale(mode))
        return ((x.float() - shift) / scale).to(x.dtype)

    def unnormalize(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        shift, scale = (torch.as_tensor(a, device=x.device) for a in self._shift_scale(mode))
        return (x.float() * scale + shift).to(x.dtype)


class NormalizationStats:
    """Statistics for every normalised feature of a policy, keyed by feature name."""

    FILENAME = "normalization_stats.json"

    def __init__(self, features: Mapping[str, FeatureStats]):
        self.features = dict(features)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> NormalizationStats:
        """``{"obs/state": (N, S), "action": (N, A), ...}`` -> statistics of each."""
        return cls({k: FeatureStats.from_array(v) for k, v in arrays.items()})

    def __contains__(self, key: str) -> bool:
        return key in self.features

    def __getitem__(self, key: str) -> FeatureStats:
        if key not in self.features:
            raise KeyError(
                f"no normalisation statistics for {key!r}; the statistics cover {sorted(self.features)}"
            )
        return self.features[key]

    def dim(self, key: str) -> int:
        return self[key].dim

    def to_json_dict(self) -> dict[str, dict[str, list[float]]]:
        return {
            k: {s: getattr(f, s).tolist() for s in STAT_NAMES} for k, f in self.features.items()
        }

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Mapping[str, list[float]]]) -> NormalizationStats:
        features = {}
        for key, stats in d.items():
            missing = [s for s in STAT_NAMES if s not in stats]
            if missing:
                raise ValueError(f"normalisation statistics of {key!r} lack {missing}")
            arrays = {s: np.asarray(stats[s], dtype=np.float32) for s in STAT_NAMES}
            if len({a.shape for a in arrays.values()}) != 1:
                raise ValueError(f"normalisation statistics of {key!r} have mismatched lengths")
            features[key] = FeatureStats(**arrays)
        return cls(features)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / self.FILENAME
        path.write_text(json.dumps(self.to_json_dict(), indent=1))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> NormalizationStats:
        return cls.from_json_dict(json.loads((Path(directory) / cls.FILENAME).read_text()))
