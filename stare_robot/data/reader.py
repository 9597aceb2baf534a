"""Lazy, read-only access to one committed episode.

Opening an episode reads only small JSON metadata files; image chunks are read when an array is
sliced or :meth:`EpisodeReader.load` is called. A reader is pinned to the episode version it was
opened on, so an :meth:`EpisodeStore.update_episode` running meanwhile never mixes two versions
into what it reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from stare_robot.data import schema
from stare_robot.data.errors import StoreError, StoreKeyError
from stare_robot.keys import ATTR_NUM_STEPS


def read_metadata(node_dir: Path) -> dict[str, Any]:
    """The parsed ``zarr.json`` of a group or array directory."""
    return json.loads((node_dir / schema.METADATA_FILE).read_text())


def array_metadata(version_dir: Path) -> dict[str, dict[str, Any]]:
    """``{array key: zarr array metadata}`` for every array under an episode version.

    Walks group metadata only; never descends into an array's chunk files.
    """
    out: dict[str, dict[str, Any]] = {}

    def walk(node_dir: Path, prefix: str) -> None:
        for child in sorted(os.scandir(node_dir), key=lambda e: e.name):
            meta_path = Path(child.path) / schema.METADATA_FILE
            if not child.is_dir() or not meta_path.is_file():
                continue
            meta = json.loads(meta_path.read_text())
            key = f"{prefix}{child.name}"
            if meta.get("node_type") == "array":
                out[key] = meta
            else:
                walk(Path(child.path), key + "/")

    walk(version_dir, "")
    return out


class EpisodeReader:
    """One committed episode: ``attrs``, ``len`` (steps), ``keys()``, lazy ``[key]``, ``load()``.

    ``ep["obs/base_camera/rgb"]`` is a zarr array of shape (T, H, W, 3); slicing it reads only the
    chunks the slice touches. ``ep.load()`` returns ``{key: np.ndarray}`` with the time axis first.
    """

    def __init__(self, episode_id: str, version_dir: Path):
        self.episode_id = episode_id
        self.path = Path(version_dir)  # the resolved version directory this reader is pinned to
        try:
            group_meta = read_metadata(self.path)
            self._arrays = array_metadata(self.path)
        except (OSError, ValueError) as err:
            raise StoreError(
                f"episode {episode_id!r} at {self.path} cannot be read: {err}"
            ) from None
        self.attrs: dict[str, Any] = dict(group_meta.get("attributes", {}))
        self._zarr_store = LocalStore(self.path, read_only=True)
        self._opened: dict[str, zarr.Array] = {}  # arrays opened so far (metadata only)

    def __repr__(self) -> str:
        return f"EpisodeReader({self.episode_id!r}, steps={len(self)}, keys={self.keys()})"

    def __len__(self) -> int:
        if ATTR_NUM_STEPS in self.attrs:
            return int(self.attrs[ATTR_NUM_STEPS])
        shapes = [meta["shape"][0] for meta in self._arrays.values()]
        return int(shapes[0]) if shapes else 0

    def keys(self) -> list[str]:
        """Array keys, sorted, e.g. ``["action", "obs/base_camera/rgb", "obs/state", "stage"]``."""
        return sorted(self._arrays)

    def __contains__(self, key: object) -> bool:
        return key in self._arrays

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def shape(self, key: str) -> tuple[int, ...]:
        """Shape of array ``key`` from metadata alone (no chunk reads)."""
        return tuple(self._meta(key)["shape"])

    def dtype(self, key: str) -> np.dtype:
        return np.dtype(self._meta(key)["data_type"])

    def _meta(self, key: str) -> dict[str, Any]:
        if key not in self._arrays:
            raise StoreKeyError(
                f"episode {self.episode_id!r} has no array {key!r}; it has: "
                f"{', '.join(self.keys()) or '(no arrays)'}"
            )
        return self._arrays[key]

    def __getitem__(self, key: str) -> zarr.Array:
        if key in self._opened:
            return self._opened[key]
        self._meta(key)
        try:
            array = zarr.open_array(self._zarr_store, path=key, mode="r")
        except (OSError, ValueError, KeyError) as err:
            raise StoreError(
                f"episode {self.episode_id!r}: array {key!r} is unreadable ({err})"
            ) from None
        self._opened[key] = array
        return array

    def get(self, key: str, default: Any = None) -> zarr.Array | Any:
        return self[key] if key in self._arrays else default

    def load(
        self, keys: Iterable[str] | None = None, steps: slice | int | None = None
    ) -> dict[str, np.ndarray]:
        """Read arrays eagerly: ``{key: ndarray}`` for ``keys`` (default all), rows ``steps``.

        ``steps`` is a slice (or int) over the time axis, e.g. ``slice(10, 20)``.
        """
        wanted = self.keys() if keys is None else list(keys)
        for key in wanted:
            self._meta(key)  # fail on a missing key before reading anything
        index = slice(None) if steps is None else steps
        if not isinstance(index, (slice, int, np.integer)):
            raise StoreError(f"steps must be a slice or an int, got {type(steps).__name__}")
        return {key: np.asarray(self[key][index]) for key in wanted}
