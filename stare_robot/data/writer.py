"""Streaming writer for one episode: ``append`` a step at a time, then commit or discard.

Steps are buffered per array until a time-chunk is full, then that chunk is compressed and
written, so memory holds at most one chunk per array and appending T steps costs O(T). Everything
goes to a private version directory; nothing is visible to readers until :meth:`commit`.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.storage import LocalStore

from stare_robot import __version__
from stare_robot.data import schema
from stare_robot.data.errors import StoreError
from stare_robot.keys import ATTR_CODE_VERSION, ATTR_NUM_STEPS

if TYPE_CHECKING:
    from stare_robot.data.store import EpisodeStore

_PY_SCALARS = (bool, int, float)


def create_time_array(
    group: zarr.Group, key: str, step_shape: tuple[int, ...], dtype: np.dtype, length: int
) -> zarr.Array:
    """A (length, *step_shape) array chunked along time, zstd-compressed (see schema)."""
    chunk = (schema.time_chunk_len(step_shape, dtype), *step_shape)
    return group.create_array(
        key,
        shape=(length, *step_shape),
        dtype=dtype,
        chunks=chunk,
        compressors=ZstdCodec(level=schema.ZSTD_LEVEL),
        # chunk files "c.0.0.0" beside zarr.json: no per-chunk directory trees to create
        chunk_key_encoding={"name": "default", "separator": "."},
        fill_value=0,
    )


class _ArrayStream:
    """Buffer of pending steps for one array, flushed a whole chunk at a time."""

    def __init__(self, group: zarr.Group, key: str, step_shape: tuple[int, ...], dtype: np.dtype):
        self.key, self.step_shape, self.dtype = key, step_shape, dtype
        self.array = create_time_array(group, key, step_shape, dtype, length=0)
        self.chunk_len = self.array.chunks[0]
        self.pending: list[np.ndarray] = []
        self.written = 0

    def push(self, value: np.ndarray) -> None:
        self.pending.append(value)
        if len(self.pending) >= self.chunk_len:
            self.flush()

    def flush(self) -> None:
        """Write pending steps; called on full chunks and once for the tail at commit."""
        if not self.pending:
            return
        block = np.stack(self.pending)
        end = self.written + len(block)
        self.array.resize((end, *self.step_shape))
        self.array[self.written : end] = block
        self.written, self.pending = end, []


class EpisodeWriter:
    """Writes one episode; use as a context manager (commit on clean exit, discard on error).

    ::

        with store.new_episode(attrs={"task": "PushCube-v1"}) as ep:
            for obs, action in rollout:
                ep.append({"obs/state": obs, "action": action})   # one step, no time axis
            ep.set_attrs(success=True)
        print(ep.episode_id)   # e.g. "episode_000007", set by the commit
    """

    def __init__(self, store: EpisodeStore, version_dir: Path, attrs: Mapping[str, Any] | None):
        self._store = store
        self.path = Path(version_dir)
        self._attrs = schema.to_json_attrs(attrs or {}, "new_episode attrs")
        self._attrs.setdefault(ATTR_CODE_VERSION, __version__)
        self._group = zarr.create_group(store=LocalStore(self.path))
        self._streams: dict[str, _ArrayStream] = {}
        self._num_steps = 0
        self.episode_id: str | None = None  # set by commit
        self._state = "open"  # open | committed | discarded

    def __len__(self) -> int:
        return self._num_steps

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._state != "open":
            return False
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._attrs)

    def set_attrs(self, attrs: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Add or replace episode attrs before the commit, e.g. ``set_attrs(success=True)``."""
        self._require_open("set_attrs")
        new = schema.to_json_attrs({**(attrs or {}), **more}, "set_attrs")
        if ATTR_NUM_STEPS in new:
            raise StoreError(f"'{ATTR_NUM_STEPS}' is written by the commit; do not set it")
        self._attrs.update(new)

    def append(self, step: Mapping[str, Any]) -> None:
        """Add one step: ``{key: value}`` with no time axis; the same keys, shapes and dtypes
        every step (Python scalars are cast to the array's dtype when that loses no kind)."""
        self._require_open("append")
        if not isinstance(step, Mapping):
            raise StoreError(f"a step must be a dict of arrays, got {type(step).__name__}")
        if not step:
            raise StoreError("a step must contain at least one array")
        values = self._first_step(step) if not self._streams else self._check_step(step)
        for key, value in values.items():
            self._streams[key].push(value)
        self._num_steps += 1

    def extend(self, steps: Mapping[str, Any]) -> None:
        """Add n steps at once: ``{key: array (n, ...)}``, all with the same leading length n."""
        self._require_open("extend")
        arrays = {key: np.asarray(value) for key, value in steps.items()}
        lengths = {key: (a.shape[0] if a.ndim else None) for key, a in arrays.items()}
        if len(set(lengths.values())) > 1 or None in lengths.values():
            raise StoreError(
                f"extend needs arrays with one shared leading (time) length, got lengths {lengths}"
            )
        count = next(iter(lengths.values()), 0)
        for t in range(count):
            self.append({key: a[t] for key, a in arrays.items()})

    def _first_step(self, step: Mapping[str, Any]) -> dict[str, np.ndarray]:
        values = {}
        for key, raw in step.items():
            value = schema.storable_array(key, raw, f"step 0, key {key!r}")
            values[key] = value
        conflicts = schema.nested_key_conflicts(list(values))
        if conflicts:
            a, b = conflicts[0]
            raise StoreError(f"key {a!r} cannot be both an array and the group holding {b!r}")
        for key, value in values.items():
            self._streams[key] = _ArrayStream(self._group, key, value.shape, value.dtype)
        return values

    def _check_step(self, step: Mapping[str, Any]) -> dict[str, np.ndarray]:
        index = self._num_steps
        missing = sorted(set(self._streams) - set(step))
        extra = sorted(set(step) - set(self._streams))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unexpected {extra}")
            raise StoreError(
                f"step {index}: {' and '.join(parts)}; every step must have exactly the keys of "
                f"step 0: {sorted(self._streams)}"
            )
        values = {}
        for key, raw in step.items():
            stream = self._streams[key]
            value = np.asarray(raw)
            if (
                value.dtype != stream.dtype
                and isinstance(raw, _PY_SCALARS)
                and np.can_cast(value.dtype, stream.dtype, casting="same_kind")
            ):
                value = value.astype(stream.dtype)
            if value.shape != stream.step_shape or value.dtype != stream.dtype:
                raise StoreError(
                    f"step {index}, key {key!r}: got shape {value.shape} dtype {value.dtype}, "
                    f"expected shape {stream.step_shape} dtype {stream.dtype} (as in step 0)"
                )
            values[key] = value
        return values

    def commit(self) -> str:
        """Flush, stamp attrs, publish atomically; returns the new episode id."""
        self._require_open("commit")
        if self._num_steps == 0:
            self.discard()
            raise StoreError("cannot commit an empty episode: append at least one step")
        try:
            for stream in self._streams.values():
                stream.flush()
            self._group.attrs.update({**self._attrs, ATTR_NUM_STEPS: self._num_steps})
            self.episode_id = self._store._publish(self.path)
        except BaseException:
            self.discard()
            raise
        self._state = "committed"
        return self.episode_id

    def discard(self) -> None:
        """Drop everything written so far (safe to call more than once)."""
        if self._state == "committed":
            raise StoreError(f"episode {self.episode_id!r} is already committed")
        self._state = "discarded"
        self._streams.clear()
        shutil.rmtree(self.path, ignore_errors=True)

    def _require_open(self, what: str) -> None:
        if self._state != "open":
            raise StoreError(f"cannot {what}: this episode writer is already {self._state}")
