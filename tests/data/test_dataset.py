"""Training windows over a real Zarr store with a known gripper pattern."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stare_robot import keys
from stare_robot.data.dataset import EpisodeWindowDataset, random_shift
from stare_robot.data.store import EpisodeStore, StoreError

T, J = 16, 3
CAM = keys.obs_rgb("base_camera")


def _write_store(path, episodes=2):
    store = EpisodeStore.create(path, attrs={keys.ATTR_TASK: "Test"})
    for e in range(episodes):
        # gripper open for t < 5, closed 5..11, open again from 12: keyframes at 5 and 12
        opening = np.where((np.arange(T) >= 5) & (np.arange(T) < 12), 0.0, 1.0)
        with store.new_episode(attrs={keys.ATTR_INSTRUCTION: f"task {e}"}) as ep:
            for t in range(T):
                ep.append({
                    keys.OBS_STATE: np.full(4, 10 * e + t, np.float32),
                    keys.OBS_JOINT_POS: np.full(J, 100 * e + t, np.float32),
                    keys.OBS_GRIPPER: np.array([opening[t]], np.float32),
                    CAM: np.full((8, 8, 3), t, np.uint8),
                    keys.ACTION: np.full(7, 1000 * e + t, np.float32),
                })
            ep.set_attrs(success=True)
    return store


def test_windows_chunks_and_stake_labels(tmp_path):
    ds = EpisodeWindowDataset(_write_store(tmp_path / "s.zarr"), chunk_size=4, obs_keys=[keys.OBS_STATE, CAM])
    assert len(ds) == 2 * T and ds.action_dim == 7 and ds.keyframe_dim == J + 1
    item = ds[T + 14]  # episode 1, step 14: chunk runs 2 steps past the end
    assert item[keys.INSTRUCTION] == "task 1"
    assert item[keys.ACTION][:, 0].tolist() == [1014, 1015, 1015, 1015]
    assert item[keys.ACTION_IS_PAD].tolist() == [False, False, True, True]
    assert torch.equal(item[CAM], torch.full((8, 8, 3), 14, dtype=torch.uint8))
    assert item[keys.OBS_STATE].tolist() == [24.0] * 4
    # StaKe: motion before the grasp keyframe (5), skill while closed, motion after release (12)
    labels = [float(ds[t][keys.STAGE_LABEL]) for t in range(T)]
    assert labels == [0.0] * 5 + [1.0] * 7 + [0.0] * 4
    # keyframe target: joints at the next keyframe and the gripper state there
    assert ds[2][keys.KEYFRAME_TARGET].tolist() == [5.0] * J + [keys.GRIPPER_CLOSED]
    assert ds[7][keys.KEYFRAME_TARGET].tolist() == [12.0] * J + [keys.GRIPPER_OPEN]
    stats = ds.stats_arrays()
    assert stats[keys.ACTION].shape == (2 * T, 7) and stats[keys.OBS_STATE].shape == (2 * T, 4)
    assert CAM not in stats


def test_collate_batches_and_augments_images(tmp_path):
    ds = EpisodeWindowDataset(_write_store(tmp_path / "s.zarr", 1), chunk_size=2, obs_keys=[CAM])
    batch = ds.collate([0, 3, 9])
    assert batch[CAM].shape == (3, 8, 8, 3) and batch[keys.INSTRUCTION] == ["task 0"] * 3
    # a constant image stays constant under a shift with edge padding
    aug = ds.collate([0, 3, 9], augment_rng=np.random.default_rng(0))
    assert torch.equal(aug[CAM], batch[CAM])


def test_random_shift_translates_content():
    img = torch.zeros(1, 16, 16, 3, dtype=torch.uint8)
    img[0, 8, 8] = 255
    rng = np.random.default_rng(1)
    out = random_shift(img, rng, pad=2)
    ys, xs = torch.nonzero(out[0, :, :, 0], as_tuple=True)
    assert len(ys) == 1 and abs(int(ys[0]) - 8) <= 2 and abs(int(xs[0]) - 8) <= 2


def test_missing_key_is_a_clear_error(tmp_path):
    store = _write_store(tmp_path / "s.zarr", 1)
    with pytest.raises(StoreError, match="lacks \\['obs/env_state'\\]"):
        EpisodeWindowDataset(store, chunk_size=2, obs_keys=[keys.OBS_ENV_STATE])
