"""Crash safety and concurrency of the episode store, with real writer subprocesses."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from store_writer_proc import STEPS, expected, write_episode

from stare_robot.data.store import EpisodeStore

HELPER = Path(__file__).with_name("store_writer_proc.py")


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HELPER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def wait_for_file_or_exit(path: Path, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"writer exited early ({proc.returncode}): {proc.stderr.read().decode()}")
        assert time.monotonic() < deadline, f"writer never created {path}"
        time.sleep(0.01)


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, plus the target of every symlink."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            out[rel] = (
                os.readlink(path)
                if path.is_symlink()
                else hashlib.sha256(path.read_bytes()).hexdigest()
            )
    return out


def assert_episode_matches(ep) -> None:
    want = expected(ep.attrs["seed"])
    assert len(ep) == STEPS and "success" in ep.attrs
    got = ep.load()
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=f"{ep.episode_id}/{key}")


def committed_files(store: EpisodeStore) -> dict[str, str]:
    hashes = tree_hashes(store.root / "episodes")
    for ep in store:
        hashes.update({f"{ep.path.name}/{k}": v for k, v in tree_hashes(ep.path).items()})
    return hashes


def test_sigkill_mid_episode_leaves_committed_episodes_intact(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", attrs={"task": "T"})
    write_episode(store, seed=0)
    write_episode(store, seed=1)
    before = committed_files(store)

    proc = spawn("kill", str(store.root), str(tmp_path))
    try:
        wait_for_file_or_exit(tmp_path / "mid", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    reopened = EpisodeStore.open(store.root)
    # episodes committed before the writer started are byte-identical
    after = committed_files(reopened)
    assert {k: after.get(k) for k in before} == before
    # the killed writer's first episode committed; its half-written one is invisible
    assert reopened.episode_ids() == ["episode_000000", "episode_000001", "episode_000002"]
    assert [ep.attrs["seed"] for ep in reopened] == [0, 1, 2]
    for ep in reopened:
        assert_episode_matches(ep)
    stale = reopened.stale_versions(older_than_s=0)
    assert len(stale) == 1
    assert any("c." in name for _, _, files in os.walk(stale[0]) for name in files), (
        "the partial episode should have flushed chunks before the kill"
    )
    # a recent partial version is kept by the default age threshold, removed with 0
    assert reopened.clean() == []
    assert reopened.clean(older_than_s=0) == stale and not stale[0].exists()
    assert len(reopened) == 3
    assert_episode_matches(reopened["episode_000002"])


def test_reader_never_sees_a_partial_episode(tmp_path):
    num = 4
    store = EpisodeStore.create(tmp_path / "s")
    proc = spawn("poll", str(store.root), str(tmp_path), str(num))
    acked, seen_counts = set(), set()
    try:
        while True:
            alive = proc.poll() is None
            ids = store.episode_ids()
            seen_counts.add(len(ids))
            for episode_id in ids:
                assert_episode_matches(store[episode_id])
            for k in range(num):
                if k not in acked and (tmp_path / f"mid_{k}").exists():
                    # the writer is paused half way through episode k: exactly k are visible
                    assert len(store) == k
                    acked.add(k)
                    (tmp_path / f"ack_{k}").write_text("")
            if not alive:
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert acked == set(range(num))
    assert seen_counts >= set(range(num)) and len(store) == num
    assert [ep.attrs["seed"] for ep in store] == [10 + k for k in range(num)]


def test_two_writers_commit_distinct_episode_ids(tmp_path):
    store = EpisodeStore.create(tmp_path / "s")
    procs = [spawn("race", str(store.root), str(tmp_path), "5", tag) for tag in ("a", "b")]
    try:
        for tag, proc in zip(("a", "b"), procs):
            wait_for_file_or_exit(tmp_path / f"ready_{tag}", proc)
        (tmp_path / "go").write_text("")
        for proc in procs:
            proc.wait(timeout=120)
            assert proc.returncode == 0, proc.stderr.read().decode()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert store.episode_ids() == [f"episode_{i:06d}" for i in range(10)]
    written = sorted((ep.attrs["writer"], ep.attrs["seed"]) for ep in store)
    assert written == sorted((tag, i) for tag in "ab" for i in range(5))
    for ep in store:
        assert_episode_matches(ep)
    assert store.stale_versions() == []


def test_commit_skips_an_episode_number_taken_meanwhile(tmp_path, monkeypatch):
    store = EpisodeStore.create(tmp_path / "s")
    write_episode(store, seed=0)
    # as if another writer (one not honouring the lock, e.g. on NFS) took number 0 after we looked
    monkeypatch.setattr(EpisodeStore, "_next_number", lambda self: 0)
    assert write_episode(store, seed=1) == "episode_000001"
    assert [ep.attrs["seed"] for ep in store] == [0, 1]
