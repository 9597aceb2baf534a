"""Every bad input to the episode store gets a StoreError that names the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from stare_robot import keys
from stare_robot.data.store import EpisodeStore, StoreError


@pytest.fixture
def store(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", attrs={keys.ATTR_TASK: "PushCube-v1"})
    for seed in range(3):
        with store.new_episode(attrs={"seed": seed}) as ep:
            for _ in range(4):
                ep.append(
                    {keys.OBS_STATE: np.zeros(3, np.float32), keys.ACTION: np.zeros(7, np.float32)}
                )
    return store


def test_open_paths_that_are_not_stores(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        EpisodeStore.open(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        EpisodeStore.open(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not an episode store"):
        EpisodeStore.open(tmp_path / "empty")
    zarr.create_group(store=str(tmp_path / "plain.zarr"))
    with pytest.raises(StoreError, match="stare_format"):
        EpisodeStore.open(tmp_path / "plain.zarr")


def test_newer_schema_version_is_refused(store):
    meta_path = store.root / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"][keys.STORE_SCHEMA_VERSION] += 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="newer") as info:
        EpisodeStore.open(store.root)
    assert "upgrade" in str(info.value)


def test_create_refuses_to_clobber_or_contradict(tmp_path, store):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        EpisodeStore.create(tmp_path / "other")
    with pytest.raises(StoreError, match="already exists"):
        EpisodeStore.create(store.root, exist_ok=False)
    with pytest.raises(StoreError, match="task: stored 'PushCube-v1', given 'PullCube-v1'"):
        EpisodeStore.create(store.root, attrs={keys.ATTR_TASK: "PullCube-v1"})
    with pytest.raises(StoreError, match="set by the store"):
        EpisodeStore.create(tmp_path / "new", attrs={keys.STORE_SCHEMA_VERSION: 9})


def test_unknown_episode_names_the_valid_range(store):
    with pytest.raises(StoreError) as info:
        store["episode_000007"]
    message = str(info.value)
    assert "episode_000007" in message and "'episode_000000' .. 'episode_000002'" in message
    assert "3 episodes" in message
    with pytest.raises(KeyError):  # also a KeyError for dict-style callers
        store["bogus"]
    with pytest.raises(StoreError, match="out of range"):
        store[3]


def test_missing_array_names_key_episode_and_existing_keys(store):
    ep = store["episode_000001"]
    with pytest.raises(StoreError) as info:
        ep[keys.obs_rgb("wrist_camera")]
    message = str(info.value)
    assert "obs/wrist_camera/rgb" in message and "episode_000001" in message
    assert keys.OBS_STATE in message and keys.ACTION in message
    with pytest.raises(StoreError, match="no array 'nope'"):
        ep.load(keys=["nope"])


def test_step_with_missing_or_extra_keys(store):
    with store.new_episode() as ep:
        ep.append({keys.OBS_STATE: np.zeros(3, np.float32), keys.ACTION: np.zeros(7, np.float32)})
        with pytest.raises(StoreError) as info:
            ep.append({keys.OBS_STATE: np.zeros(3, np.float32), keys.STAGE: 1})
        message = str(info.value)
        assert (
            "step 1" in message
            and "missing ['action']" in message
            and "unexpected ['stage']" in message
        )
        ep.discard()


def test_step_with_wrong_shape_or_dtype(store):
    with store.new_episode() as ep:
        ep.append({keys.OBS_STATE: np.zeros(3, np.float32)})
        with pytest.raises(StoreError) as info:
            ep.append({keys.OBS_STATE: np.zeros(4, np.float32)})
        assert (
            "'obs/state'" in str(info.value)
            and "(4,)" in str(info.value)
            and "(3,)" in str(info.value)
        )
        with pytest.raises(StoreError, match="dtype float64.*expected.*dtype float32"):
            ep.append({keys.OBS_STATE: np.zeros(3, np.float64)})
        ep.discard()
    with store.new_episode() as ep:
        ep.append({keys.STAGE: np.int16(1)})
        with pytest.raises(StoreError, match="'stage'.*float64"):
            ep.append({keys.STAGE: 1.5})  # a float would be silently truncated into int16
        ep.discard()


def test_unstorable_steps_and_keys(store):
    writer = store.new_episode()
    with pytest.raises(StoreError, match="strings belong in episode attrs"):
        writer.append({"instruction": np.array("push the cube")})
    with pytest.raises(StoreError, match="bad array key '/abs'"):
        writer.append({"/abs": np.zeros(1)})
    with pytest.raises(StoreError, match="bad array key 'obs/../x'"):
        writer.append({"obs/../x": np.zeros(1)})
    with pytest.raises(
        StoreError, match="'obs' cannot be both an array and the group holding 'obs/state'"
    ):
        writer.append({"obs": np.zeros(1), "obs/state": np.zeros(1)})
    with pytest.raises(StoreError, match="dict of arrays"):
        writer.append([1, 2])
    with pytest.raises(StoreError, match="'bad'.*JSON"):
        writer.set_attrs(bad=object())
    with pytest.raises(StoreError, match="num_steps"):
        writer.set_attrs(num_steps=3)
    with pytest.raises(StoreError, match="empty episode"):
        writer.commit()
    with pytest.raises(StoreError, match="already discarded"):
        writer.append({keys.ACTION: np.zeros(7)})


def test_committed_writer_cannot_be_reused(store):
    with store.new_episode() as ep:
        ep.append({keys.ACTION: np.zeros(7, np.float32)})
    with pytest.raises(StoreError, match="already committed"):
        ep.append({keys.ACTION: np.zeros(7, np.float32)})
    with pytest.raises(StoreError, match="already committed"):
        ep.discard()


def test_bad_updates(store):
    with pytest.raises(StoreError, match="no episode 'episode_000042'"):
        store.update_episode("episode_000042", attrs={"x": 1})
    with pytest.raises(StoreError, match=r"shape \(3,\).*4 rows"):
        store.update_episode("episode_000000", arrays={keys.STAGE: np.zeros(3, np.int16)})
    with pytest.raises(StoreError, match="fixed at 4"):
        store.update_episode("episode_000000", attrs={keys.ATTR_NUM_STEPS: 5})
    with pytest.raises(StoreError, match="'obs/state' cannot be both"):
        store.update_episode("episode_000000", arrays={"obs/state/x": np.zeros(4)})
    assert "x" not in store["episode_000000"].attrs
