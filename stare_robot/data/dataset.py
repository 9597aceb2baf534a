"""A torch ``Dataset`` of training windows over an episode store.

Item ``i`` is one step ``t`` of one episode::

    {
        "obs/state": float32 (S,), "obs/env_state": float32 (E,),   # the requested obs keys
        "obs/base_camera/rgb": uint8 (H, W, 3),                      # (augmented in training)
        "instruction": str,
        "action": float32 (C, A)          # actions t .. t+C-1, the last one repeated past the end
        "action_is_pad": bool (C,)        # True where the chunk ran past the episode's end
        "stage_label": float32 ()         # StaKe: 0 motion, 1 skill (gripper closed after a grasp)
        "keyframe_target": float32 (J+1,) # joints + gripper at the next gripper keyframe
    }

Actions and states are raw (un-normalised); the policy's processor normalises them with statistics
from :meth:`EpisodeWindowDataset.stats_arrays`. Low-dimensional arrays of every episode are read
into memory at start (they are small); images are read per episode on first use and cached, so an
epoch decompresses each image chunk once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from stare_robot import keys
from stare_robot.data.store import EpisodeStore, StoreError
from stare_robot.stages.gripper import keyframe_targets, motion_skill_labels


class EpisodeWindowDataset(Dataset):
    """(observation, action chunk, StaKe labels) windows; see the module docstring."""

    def __init__(
        self,
        store: EpisodeStore | str | Path,
        chunk_size: int,
        obs_keys: Sequence[str],
        episode_ids: Sequence[str] | None = None,
        image_cache_mb: float = 4096,
    ):
        self.store = store if isinstance(store, EpisodeStore) else EpisodeStore.open(store)
        self.chunk_size = int(chunk_size)
        self.obs_keys = list(obs_keys)
        ids = list(episode_ids) if episode_ids is not None else self.store.episode_ids()
        if not ids:
            raise StoreError(f"{self.store.root} has no committed episodes to train on")
        self.episode_ids = ids
        self._low: list[dict[str, np.ndarray]] = []
        self._instructions: list[str] = []
        self._image_cache: dict[tuple[int, str], np.ndarray] = {}
        self._cache_budget = image_cache_mb * 2**20
        self._cache_bytes = 0
        index = []
        for e, eid in enumerate(ids):
            ep = self.store[eid]
            missing = [k for k in [keys.ACTION, keys.OBS_JOINT_POS, *self.obs_keys] if k not in ep]
            if missing:
                raise StoreError(
                    f"episode {eid} of {self.store.root} lacks {missing} needed for training; "
                    f"it has {sorted(ep.keys())}"
                )
            low_keys = [k for k in self.obs_keys if not keys.is_image(k)]
            traj = ep.load([keys.ACTION, keys.OBS_JOINT_POS, *low_keys,
                            *([keys.OBS_GRIPPER] if keys.OBS_GRIPPER in ep else [])])
            traj[keys.STAGE_LABEL] = motion_skill_labels(traj).astype(np.float32)
            traj[keys.KEYFRAME_TARGET] = keyframe_targets(traj).astype(np.float32)
            self._low.append(traj)
            self._instructions.append(str(ep.attrs.get(keys.ATTR_INSTRUCTION, "")))
            index.extend((e, t) for t in range(len(ep)))
        self._index = np.asarray(index, dtype=np.int64).reshape(-1, 2)

    # ------------------------------------------------------------------ shapes for building a policy

    @property
    def action_dim(self) -> int:
        return int(self._low[0][keys.ACTION].shape[-1])

    @property
    def keyframe_dim(self) -> int:
        return int(self._low[0][keys.KEYFRAME_TARGET].shape[-1])

    def feature_shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Per observation key: (shape of one step, dtype name) — what a policy config needs."""
        ep = self.store[self.episode_ids[0]]
        return {k: (tuple(ep.shape(k)[1:]), np.dtype(ep.dtype(k)).name) for k in self.obs_keys}

    def stats_arrays(self) -> dict[str, np.ndarray]:
        """Every step's low-dimensional features and actions, for normalisation statistics."""
        low_keys = [k for k in self.obs_keys if not keys.is_image(k)]
        return {k: np.concatenate([ep[k] for ep in self._low]) for k in [*low_keys, keys.ACTION]}

    # ------------------------------------------------------------------------------------ items

    def __len__(self) -> int:
        return len(self._index)

    def _images(self, e: int, key: str) -> np.ndarray:
        cached = self._image_cache.get((e, key))
        if cached is None:
            cached = self.store[self.episode_ids[e]][key][:]
            if self._cache_bytes + cached.nbytes <= self._cache_budget:
                self._image_cache[(e, key)] = cached
                self._cache_bytes += cached.nbytes
        return cached

    def __getitem__(self, i: int) -> dict:
        e, t = (int(v) for v in self._index[i])
        low = self._low[e]
        n = low[keys.ACTION].shape[0]
        steps = np.arange(t, t + self.chunk_size)
        item = {
            keys.INSTRUCTION: self._instructions[e],
            keys.ACTION: torch.from_numpy(low[keys.ACTION][np.minimum(steps, n - 1)].astype(np.float32)),
            keys.ACTION_IS_PAD: torch.from_numpy(steps >= n),
            keys.STAGE_LABEL: torch.tensor(low[keys.STAGE_LABEL][t]),
            keys.KEYFRAME_TARGET: torch.from_numpy(low[keys.KEYFRAME_TARGET][t]),
        }
        for k in self.obs_keys:
            value = self._images(e, k)[t] if keys.is_image(k) else low[k][t].astype(np.float32)
            item[k] = torch.from_numpy(np.ascontiguousarray(value))
        return item

    def collate(self, indices: Sequence[int], augment_rng: np.random.Generator | None = None) -> dict:
        """A batch of the given items; images are randomly shifted when ``augment_rng`` is given."""
        items = [self[int(i)] for i in indices]
        batch: dict = {}
        for k in items[0]:
            values = [it[k] for it in items]
            batch[k] = values if isinstance(values[0], str) else torch.stack(values)
        if augment_rng is not None:
            for k in self.obs_keys:
                if keys.is_rgb(k):
                    batch[k] = random_shift(batch[k], augment_rng)
        return batch


def random_shift(images: torch.Tensor, rng: np.random.Generator, pad: int = 4) -> torch.Tensor:
    """DrQ-style augmentation: pad each (B, H, W, C) image by ``pad`` with edge pixels and crop it
    back at a random offset, a small translation the policy should be robust to."""
    b, h, w, _ = images.shape
    padded = torch.nn.functional.pad(images.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate")
    offsets = rng.integers(0, 2 * pad + 1, size=(b, 2))
    out = torch.stack([padded[j, :, y:y + h, x:x + w] for j, (y, x) in enumerate(offsets)])
    return out.permute(0, 2, 3, 1).to(images.dtype)
