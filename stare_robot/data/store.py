"""The Zarr episode store: many episodes under one root, each committed whole or not at all.

::

    from stare_robot.data.store import EpisodeStore

    store = EpisodeStore.create("data/pushcube.zarr", attrs={"task": "PushCube-v1"})
    with store.new_episode(attrs={"task": "PushCube-v1", "seed": 0}) as ep:
        for t in range(T):
            ep.append({"obs/state": state[t], "action": action[t]})   # one step, no time axis
        ep.set_attrs(success=True)
    for ep in EpisodeStore.open("data/pushcube.zarr"):      # committed episodes, in order
        ep["obs/state"][:10]                                 # lazy zarr array

Crash safety (layout in :mod:`stare_robot.data.schema`): an episode is written into a private
``versions/<uuid>`` directory and published by creating the symlink ``episodes/episode_NNNNNN``,
which is atomic and fails if the name is taken, so it also allocates the number when writers race.
A writer killed mid-episode leaves only an unreferenced version directory, which readers never
list and :meth:`EpisodeStore.clean` removes. ``update_episode`` builds a new version (metadata
copied, unchanged chunks hard-linked) and swaps the symlink with ``os.replace``: a reader sees the
old version or the new one, never a mix. This protects against process crashes; pass
``durable=True`` to also fsync before publishing (power loss).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from stare_robot.data import schema
from stare_robot.data.errors import StoreError, StoreKeyError
from stare_robot.data.reader import EpisodeReader, read_metadata
from stare_robot.data.writer import EpisodeWriter, create_time_array
from stare_robot.keys import ATTR_NUM_STEPS, STORE_FORMAT, STORE_SCHEMA_VERSION

__all__ = ["EpisodeReader", "EpisodeStore", "EpisodeWriter", "StoreError", "StoreKeyError"]


class EpisodeStore:
    """A directory of committed episodes; see the module docstring for the layout and guarantees.

    Make one with :meth:`create` or :meth:`open`, not the constructor.
    """

    def __init__(self, root: Path, attrs: dict[str, Any], durable: bool = False):
        self.root = Path(root)
        self._attrs = attrs
        self.durable = durable
        self._episodes_dir = self.root / schema.EPISODES_DIR
        self._versions_dir = self.root / schema.VERSIONS_DIR

    # ----------------------------------------------------------------- opening

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        attrs: Mapping[str, Any] | None = None,
        exist_ok: bool = True,
        durable: bool = False,
    ) -> EpisodeStore:
        """Make a new store at ``path`` (or open the existing one when ``exist_ok``).

        ``attrs`` (e.g. ``{"task": ..., "action_space": ...}``) become store attrs; on an existing
        store, new names are added and a value that differs from the stored one is an error.
        """
        root = Path(path)
        new_attrs = schema.to_json_attrs(attrs or {}, "store attrs")
        for reserved in (STORE_FORMAT, STORE_SCHEMA_VERSION):
            if reserved in new_attrs:
                raise StoreError(f"store attr {reserved!r} is set by the store itself")
        if root.exists() and not root.is_dir():
            raise StoreError(f"cannot create an episode store at {root}: it is a file")
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root):
            if (root / schema.METADATA_FILE).exists():
                if not exist_ok:
                    raise StoreError(f"an episode store already exists at {root} (exist_ok=False)")
                store = cls.open(root, durable=durable)
                store._merge_attrs(new_attrs)
                return store
            if any(p.name != schema.LOCK_FILE for p in root.iterdir()):
                raise StoreError(
                    f"cannot create an episode store at {root}: the directory is not empty and "
                    "is not a store; pick a new or empty directory"
                )
            store_attrs = {
                STORE_FORMAT: schema.FORMAT_NAME,
                STORE_SCHEMA_VERSION: schema.SCHEMA_VERSION,
                **new_attrs,
            }
            root_group = zarr.create_group(store=LocalStore(root), attributes=store_attrs)
            root_group.create_group(schema.EPISODES_DIR)
            (root / schema.VERSIONS_DIR).mkdir()
        return cls(root, store_attrs, durable=durable)

    @classmethod
    def open(cls, path: str | os.PathLike, durable: bool = False) -> EpisodeStore:
        """Open an existing store to read and append; StoreError if ``path`` is not one."""
        root = Path(path)
        return cls(root, _read_store_attrs(root), durable=durable)

    def _merge_attrs(self, new_attrs: dict[str, Any]) -> None:
        conflicts = {
            k: (self._attrs[k], v)
            for k, v in new_attrs.items()
            if k in self._attrs and self._attrs[k] != v
        }
        if conflicts:
            detail = "; ".join(f"{k}: stored {a!r}, given {b!r}" for k, (a, b) in conflicts.items())
            raise StoreError(f"store {self.root} already has different attrs: {detail}")
        added = {k: v for k, v in new_attrs.items() if k not in self._attrs}
        if added:
            zarr.open_group(store=LocalStore(self.root), mode="r+").attrs.update(added)
            self._attrs.update(added)

    @property
    def attrs(self) -> dict[str, Any]:
        """Store-level attrs (format marker, schema version, task, action space, ...)."""
        return dict(self._attrs)

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.root)!r}, episodes={len(self)})"

    # ----------------------------------------------------------------- reading

    def episode_ids(self) -> list[str]:
        """Ids of committed episodes, in commit order (``episode_000000``, ``episode_000001``...)."""
        found = []
        for entry in os.scandir(self._episodes_dir):
            number = schema.episode_number(entry.name)
            # exists() follows the symlink: a dangling link is not a readable episode
            if number is not None and os.path.exists(entry.path):
                found.append((number, entry.name))
        return [name for _, name in sorted(found)]

    def __len__(self) -> int:
        return len(self.episode_ids())

    def __iter__(self) -> Iterator[EpisodeReader]:
        for episode_id in self.episode_ids():
            yield self[episode_id]

    def __contains__(self, episode_id: object) -> bool:
        return isinstance(episode_id, str) and episode_id in self.episode_ids()

    def __getitem__(self, episode_id: str | int) -> EpisodeReader:
        """The episode ``episode_id`` (or the one at that position in :meth:`episode_ids`)."""
        if isinstance(episode_id, (int, np.integer)) and not isinstance(episode_id, bool):
            ids = self.episode_ids()
            if not -len(ids) <= episode_id < len(ids):
                raise StoreKeyError(
                    f"episode index {episode_id} out of range: {self._describe_ids(ids)}"
                )
            episode_id = ids[episode_id]
        link = self._episodes_dir / str(episode_id)
        if schema.episode_number(str(episode_id)) is None or not link.exists():
            raise StoreKeyError(
                f"no episode {episode_id!r} in {self.root}: {self._describe_ids(self.episode_ids())}"
            )
        return EpisodeReader(str(episode_id), Path(os.path.realpath(link)))

    def _describe_ids(self, ids: list[str]) -> str:
        if not ids:
            return "the store has no committed episodes"
        if len(ids) == 1:
            return f"the only episode is {ids[0]!r}"
        return f"valid ids are {ids[0]!r} .. {ids[-1]!r} ({len(ids)} episodes)"

    # ----------------------------------------------------------------- writing

    def new_episode(self, attrs: Mapping[str, Any] | None = None) -> EpisodeWriter:
        """A writer for one new episode; invisible to readers until it commits."""
        return EpisodeWriter(self, self._new_version_dir(), attrs)

    def _new_version_dir(self) -> Path:
        return self._versions_dir / uuid.uuid4().hex

    def _publish(self, version_dir: Path) -> str:
        """Make a fully written version visible under the next free episode id (the commit)."""
        with _locked(self.root):
            if not (version_dir / schema.METADATA_FILE).is_file():
                raise StoreError(
                    f"cannot commit: {version_dir} is gone (removed by EpisodeStore.clean while "
                    "the episode was being written?)"
                )
            if self.durable:
                _fsync_tree(version_dir)
            target = os.path.relpath(version_dir, self._episodes_dir)
            number = self._next_number()
            while True:
                name = schema.episode_id(number)
                try:
                    os.symlink(target, self._episodes_dir / name)  # atomic, fails if taken
                    break
                except FileExistsError:
                    number += 1  # another writer won this number (e.g. without flock, NFS)
            if self.durable:
                _fsync_dir(self._episodes_dir)
        return name

    def _next_number(self) -> int:
        numbers = [schema.episode_number(n) for n in os.listdir(self._episodes_dir)]
        return max((n for n in numbers if n is not None), default=-1) + 1

    def update_episode(
        self,
        episode_id: str,
        arrays: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> bool:
        """Replace or add whole per-step arrays and attrs of a committed episode, atomically.

        ``arrays`` maps keys to arrays of shape (T, ...) with T = the episode's steps. Readers see
        the old version or the new one, never a mix; a crash leaves the old one. Applying the same
        update again changes nothing. Returns True if a new version was written.
        """
        new_attrs = schema.to_json_attrs(attrs or {}, "update_episode attrs")
        with _locked(self.root):
            current = self[episode_id]
            episode_id = current.episode_id
            new_arrays = self._check_update_arrays(current, arrays or {})
            if ATTR_NUM_STEPS in new_attrs and new_attrs[ATTR_NUM_STEPS] != len(current):
                raise StoreError(
                    f"'{ATTR_NUM_STEPS}' is fixed at {len(current)} for {episode_id!r}"
                )
            if _unchanged(current, new_arrays, new_attrs):
                return False
            link = self._episodes_dir / episode_id
            if not link.is_symlink():
                raise StoreError(
                    f"{link} is a plain directory, not a symlink (was the store copied without "
                    "preserving symlinks?); re-copy it with `cp -a` or `rsync -a` to update it"
                )
            new_dir = self._new_version_dir()
            tmp_link = self._episodes_dir / f".tmp-{new_dir.name}"
            try:
                _clone_version(current.path, new_dir)
                group = zarr.open_group(store=LocalStore(new_dir), mode="r+")
                for key, value in new_arrays.items():
                    # unlink the cloned (hard-linked) files first so no write can reach the old
                    # version's chunks through a shared inode
                    shutil.rmtree(new_dir / key, ignore_errors=True)
                    create_time_array(group, key, value.shape[1:], value.dtype, len(value))[:] = (
                        value
                    )
                if new_attrs:
                    group.attrs.update(new_attrs)
                if self.durable:
                    _fsync_tree(new_dir)
                os.symlink(os.path.relpath(new_dir, self._episodes_dir), tmp_link)
                os.replace(tmp_link, link)  # the atomic swap
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_link)
                if os.path.realpath(link) != os.path.realpath(new_dir):  # not swapped in
                    shutil.rmtree(new_dir, ignore_errors=True)
                raise
            # the old version stays for readers pinned to it; its age for clean() starts now
            os.utime(current.path)
        return True

    def _check_update_arrays(
        self, current: EpisodeReader, arrays: Mapping[str, Any]
    ) -> dict[str, np.ndarray]:
        out = {}
        for key, raw in arrays.items():
            value = schema.storable_array(key, raw, f"array {key!r}")
            if value.ndim == 0 or value.shape[0] != len(current):
                raise StoreError(
                    f"array {key!r} has shape {value.shape}; it must be per-step with "
                    f"{len(current)} rows (the steps of {current.episode_id!r})"
                )
            out[key] = value
        conflicts = schema.nested_key_conflicts(sorted(set(current.keys()) | set(out)))
        if conflicts:
            a, b = conflicts[0]
            raise StoreError(f"key {a!r} cannot be both an array and the group holding {b!r}")
        return out

    # ----------------------------------------------------------------- housekeeping

    def stale_versions(self, older_than_s: float = 0.0) -> list[Path]:
        """Version directories no episode points at (crashed writers, replaced versions, writers
        still in progress), untouched for at least ``older_than_s`` seconds."""
        candidates = sorted(self._versions_dir.iterdir())  # listed before the links, see below
        # A version committed after the listing above is in this set, so it is never judged stale.
        referenced = {
            os.path.realpath(entry.path)
            for entry in os.scandir(self._episodes_dir)
            if entry.is_symlink()
        }
        now = time.time()
        return [
            path
            for path in candidates
            if str(path.resolve()) not in referenced and now - _newest_mtime(path) >= older_than_s
        ]

    def clean(self, older_than_s: float = 3600.0) -> list[Path]:
        """Delete stale versions older than ``older_than_s`` (keep it above the longest episode
        anyone is still writing). Returns what was removed."""
        with _locked(self.root):
            stale = self.stale_versions(older_than_s)
            for path in stale:
                shutil.rmtree(path, ignore_errors=True)
            for entry in os.scandir(self._episodes_dir):  # leftovers of an interrupted update
                if entry.name.startswith(".tmp-") and entry.is_symlink():
                    os.unlink(entry.path)
        return stale


# --------------------------------------------------------------------- helpers


def _read_store_attrs(root: Path) -> dict[str, Any]:
    """The store attrs at ``root``, or a StoreError saying why ``root`` is not a usable store."""
    hint = "create one with EpisodeStore.create(path) or `stare-robot demos --out PATH`"
    if not root.exists():
        raise StoreError(f"no episode store at {root}: the path does not exist; {hint}")
    if not root.is_dir():
        raise StoreError(f"{root} is a file, not an episode store directory")
    try:
        meta = read_metadata(root)
    except FileNotFoundError:
        raise StoreError(
            f"{root} is not an episode store (no {schema.METADATA_FILE}); {hint}"
        ) from None
    except (OSError, ValueError) as err:
        raise StoreError(f"{root}/{schema.METADATA_FILE} is unreadable: {err}") from None
    attrs = meta.get("attributes") or {}
    if attrs.get(STORE_FORMAT) != schema.FORMAT_NAME:
        raise StoreError(
            f"{root} is a zarr group but not a stare-robot episode store: attr {STORE_FORMAT!r} "
            f"is {attrs.get(STORE_FORMAT)!r}, expected {schema.FORMAT_NAME!r}"
        )
    version = attrs.get(STORE_SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise StoreError(f"{root}: attr {STORE_SCHEMA_VERSION!r} must be an int, got {version!r}")
    if version > schema.SCHEMA_VERSION:
        raise StoreError(
            f"{root} has schema version {version}, newer than this stare-robot reads "
            f"(up to {schema.SCHEMA_VERSION}); upgrade stare-robot to read it"
        )
    for sub in (schema.EPISODES_DIR, schema.VERSIONS_DIR):
        if not (root / sub).is_dir():
            raise StoreError(f"damaged episode store {root}: the {sub}/ directory is missing")
    return attrs


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Exclusive flock on ``<root>/.lock``: serialises commits, updates and clean-ups."""
    with open(root / schema.LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _unchanged(
    current: EpisodeReader, arrays: dict[str, np.ndarray], attrs: dict[str, Any]
) -> bool:
    if any(current.attrs.get(k, _MISSING) != v for k, v in attrs.items()):
        return False
    for key, value in arrays.items():
        if (
            key not in current
            or current.shape(key) != value.shape
            or current.dtype(key) != value.dtype
        ):
            return False
        if not np.array_equal(current.load([key])[key], value, equal_nan=value.dtype.kind == "f"):
            return False
    return True


_MISSING = object()


def _clone_version(src: Path, dst: Path) -> None:
    """Copy metadata files and hard-link chunk files (which are never written again)."""
    for dirpath, _, filenames in os.walk(src):
        out_dir = dst / os.path.relpath(dirpath, src)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            source, target = os.path.join(dirpath, name), out_dir / name
            if name == schema.METADATA_FILE:
                shutil.copy2(source, target)
                continue
            try:
                os.link(source, target)
            except OSError:  # filesystem without hard links
                shutil.copy2(source, target)


def _newest_mtime(path: Path) -> float:
    newest = path.stat().st_mtime
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return newest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))
