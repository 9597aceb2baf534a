"""Writing and reading episodes: round trips, streaming, laziness, updates."""

from __future__ import annotations

import os

import numpy as np
import pytest
from zarr.storage import LocalStore

from stare_robot import keys
from stare_robot.data.store import EpisodeStore, StoreError

DTYPES = [
    "bool",
    "uint8",
    "uint16",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
]
SHAPES = [(), (1,), (7,), (5, 4), (6, 5, 3)]
T = 37  # not a multiple of any chunk length: the tail chunk is partial


def random_array(rng, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    return (rng.standard_normal(shape) * 1000).astype(dt)


@pytest.fixture
def store(tmp_path):
    return EpisodeStore.create(tmp_path / "store.zarr", attrs={keys.ATTR_TASK: "PushCube-v1"})


def test_round_trip_every_dtype_and_shape(store):
    rng = np.random.default_rng(0)
    data = {
        f"x/{dtype}/d{len(shape)}": np.stack([random_array(rng, dtype, shape) for _ in range(T)])
        for dtype in DTYPES
        for shape in SHAPES
    }
    attrs = {
        "seed": np.int64(3),
        keys.ATTR_SUCCESS: np.bool_(True),
        keys.ATTR_STAGE_NAMES: ("reach", "push"),
        keys.ATTR_KEYFRAMES: np.array([4, 9]),
        keys.ATTR_CONTROL_RATE: np.float32(20.0),
        "nested": {"a": [1, 2.5, None, "s"]},
    }
    with store.new_episode(attrs=attrs) as ep:
        for t in range(T):
            ep.append({key: value[t] for key, value in data.items()})
    reader = store[ep.episode_id]
    assert len(reader) == T and reader.keys() == sorted(data)
    loaded = reader.load()
    for key, value in data.items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape, key
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)
        np.testing.assert_array_equal(reader[key][5:20], value[5:20], err_msg=key)
    assert reader.attrs["seed"] == 3 and reader.attrs[keys.ATTR_SUCCESS] is True
    assert reader.attrs[keys.ATTR_STAGE_NAMES] == ["reach", "push"]
    assert reader.attrs[keys.ATTR_KEYFRAMES] == [4, 9]
    assert reader.attrs[keys.ATTR_CONTROL_RATE] == 20.0
    assert reader.attrs["nested"] == {"a": [1, 2.5, None, "s"]}
    assert reader.attrs[keys.ATTR_NUM_STEPS] == T
    assert keys.ATTR_CODE_VERSION in reader.attrs
    subset = reader.load(keys=["x/int16/d1", "x/float64/d0"], steps=slice(3, 9))
    assert sorted(subset) == ["x/float64/d0", "x/int16/d1"]
    np.testing.assert_array_equal(subset["x/int16/d1"], data["x/int16/d1"][3:9])
    assert reader.get("absent") is None and reader.get("x/bool/d0") is not None


def test_python_scalars_are_cast_to_the_first_steps_dtype(store):
    with store.new_episode() as ep:
        ep.append({keys.STAGE: np.int16(0), keys.TIMESTAMP: np.float32(0.0)})
        ep.append({keys.STAGE: 2, keys.TIMESTAMP: 0.5})
    loaded = store[0].load()
    assert loaded[keys.STAGE].dtype == np.int16 and loaded[keys.STAGE].tolist() == [0, 2]
    assert loaded[keys.TIMESTAMP].dtype == np.float32 and loaded[keys.TIMESTAMP].tolist() == [
        0.0,
        0.5,
    ]


def test_episode_ids_iteration_and_store_attrs(store):
    for seed in range(3):
        with store.new_episode(attrs={"seed": seed}) as ep:
            ep.append({keys.ACTION: np.zeros(7, np.float32)})
    reopened = EpisodeStore.open(store.root)
    assert reopened.episode_ids() == ["episode_000000", "episode_000001", "episode_000002"]
    assert len(reopened) == 3 and "episode_000001" in reopened and "episode_000009" not in reopened
    assert [ep.attrs["seed"] for ep in reopened] == [0, 1, 2]
    assert reopened[-1].episode_id == "episode_000002"
    attrs = reopened.attrs
    assert attrs[keys.STORE_FORMAT] == "stare-robot-episodes"
    assert isinstance(attrs[keys.STORE_SCHEMA_VERSION], int)
    assert attrs[keys.ATTR_TASK] == "PushCube-v1"
    # create(exist_ok=True) on an existing store opens it and adds new attrs
    again = EpisodeStore.create(
        store.root, attrs={keys.ATTR_ACTION_SPACE: keys.ACTION_SPACE_EE_DELTA}
    )
    assert len(again) == 3
    assert EpisodeStore.open(store.root).attrs[keys.ATTR_ACTION_SPACE] == keys.ACTION_SPACE_EE_DELTA


def test_writer_streams_chunks_to_disk_and_buffers_at_most_one_chunk(store):
    rgb = keys.obs_rgb(keys.DEFAULT_CAMERA)
    writer = store.new_episode()
    frames = [np.full((32, 32, 3), t, np.uint8) for t in range(50)]
    for t, frame in enumerate(frames):
        writer.append({rgb: frame})
        stream = writer._streams[rgb]
        assert len(stream.pending) < stream.chunk_len
    chunk_len = writer._streams[rgb].chunk_len
    on_disk = [f for f in os.listdir(writer.path / rgb) if f.startswith("c.")]
    assert len(on_disk) == 50 // chunk_len, "full chunks must be written before the commit"
    assert store.episode_ids() == [], "nothing is visible before the commit"
    writer.commit()
    np.testing.assert_array_equal(store[writer.episode_id].load()[rgb], np.stack(frames))


def test_exception_discards_and_explicit_discard(store):
    with pytest.raises(RuntimeError), store.new_episode() as ep:
        ep.append({keys.ACTION: np.ones(7, np.float32)})
        raise RuntimeError("robot fault")
    assert len(store) == 0 and not ep.path.exists()
    writer = store.new_episode()
    writer.append({keys.ACTION: np.ones(7, np.float32)})
    writer.discard()
    assert len(store) == 0 and not writer.path.exists()
    assert store.stale_versions(0) == []


def test_opening_an_episode_reads_no_chunks(store, monkeypatch):
    rgb = keys.obs_rgb(keys.DEFAULT_CAMERA)
    with store.new_episode() as ep:
        for t in range(40):
            ep.append(
                {rgb: np.full((16, 16, 3), t, np.uint8), keys.OBS_STATE: np.zeros(4, np.float32)}
            )
    read_keys: list[str] = []
    original_get = LocalStore.get

    async def counting_get(self, key, *args, **kwargs):
        read_keys.append(key)
        return await original_get(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", counting_get)
    opened = EpisodeStore.open(store.root)
    reader = opened["episode_000000"]
    assert len(reader) == 40 and reader.shape(rgb) == (40, 16, 16, 3) and reader.attrs
    array = reader[rgb]
    assert not [k for k in read_keys if "/c." in k], f"chunks read on open: {read_keys}"
    frame = array[20]
    assert frame[0, 0, 0] == 20
    chunk_reads = [k for k in read_keys if "/c." in k]
    assert chunk_reads == [f"{rgb}/c.{20 // array.chunks[0]}.0.0.0"]


def test_update_episode_replaces_arrays_and_attrs_atomically_and_idempotently(store):
    rgb = keys.obs_rgb(keys.DEFAULT_CAMERA)
    frames = np.stack([np.full((8, 8, 3), t, np.uint8) for t in range(12)])
    with store.new_episode(attrs={"seed": 7}) as ep:
        for t in range(12):
            ep.append({rgb: frames[t], keys.STAGE: np.int16(0)})
    old_reader = store[ep.episode_id]
    stage = np.repeat(np.arange(3, dtype=np.int16), 4)
    potential = np.linspace(0, 1, 12, dtype=np.float32)
    update = {
        "arrays": {keys.STAGE: stage, "stage_potential": potential},
        "attrs": {keys.ATTR_KEYFRAMES: [4, 8]},
    }

    assert store.update_episode(ep.episode_id, **update) is True
    new = store[ep.episode_id]
    np.testing.assert_array_equal(new.load()[keys.STAGE], stage)
    np.testing.assert_array_equal(new.load()["stage_potential"], potential)
    np.testing.assert_array_equal(new.load()[rgb], frames)
    assert new.attrs[keys.ATTR_KEYFRAMES] == [4, 8] and new.attrs["seed"] == 7
    # a reader opened before the update still reads the old version, unmixed
    assert (
        old_reader.load()[keys.STAGE].tolist() == [0] * 12 and "stage_potential" not in old_reader
    )
    # same update again: nothing changes, not even the version on disk
    version = new.path
    assert store.update_episode(ep.episode_id, **update) is False
    assert store[ep.episode_id].path == version
    np.testing.assert_array_equal(store[ep.episode_id].load()[keys.STAGE], stage)
    assert len(store) == 1
    # the replaced version is kept for pinned readers until clean()
    assert store.stale_versions(0) == [old_reader.path]
    store.clean(older_than_s=0)
    np.testing.assert_array_equal(store[ep.episode_id].load()[rgb], frames)


def test_failed_update_leaves_the_old_version(store, monkeypatch):
    with store.new_episode() as ep:
        for t in range(6):
            ep.append({keys.STAGE: np.int16(t)})
    before = store[ep.episode_id].path

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the swap")

    monkeypatch.setattr("stare_robot.data.store.os.replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.update_episode(
            ep.episode_id, arrays={keys.STAGE: np.zeros(6, np.int16)}, attrs={"x": 1}
        )
    monkeypatch.undo()
    reader = store[ep.episode_id]
    assert reader.path == before and "x" not in reader.attrs
    assert reader.load()[keys.STAGE].tolist() == list(range(6))
    assert store.stale_versions(0) == [] and not list((store.root / "episodes").glob(".tmp-*"))
    # a rejected update (wrong length) changes nothing either
    with pytest.raises(StoreError, match="6 rows"):
        store.update_episode(ep.episode_id, arrays={keys.STAGE: np.zeros(5, np.int16)})
    assert store[ep.episode_id].path == before


def test_extend_matches_append_and_checks_lengths(store):
    actions = np.arange(30, dtype=np.float32).reshape(6, 5)
    stages = np.arange(6, dtype=np.int16)
    with store.new_episode() as ep:
        ep.extend({keys.ACTION: actions[:4], keys.STAGE: stages[:4]})
        ep.append({keys.ACTION: actions[4], keys.STAGE: stages[4]})
        ep.extend({keys.ACTION: actions[5:], keys.STAGE: stages[5:]})
        with pytest.raises(StoreError, match="shared leading"):
            ep.extend({keys.ACTION: actions[:2], keys.STAGE: stages[:3]})
    loaded = store[ep.episode_id].load()
    np.testing.assert_array_equal(loaded[keys.ACTION], actions)
    np.testing.assert_array_equal(loaded[keys.STAGE], stages)
