"""`stare-robot demos` killed mid-run and run again completes the store: no duplicate, no gap."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stare_robot import keys
from stare_robot.data.store import EpisodeStore, StoreError

pytestmark = pytest.mark.sim  # ~22 s here: not slow

NUM, SEED = 6, 500


def demos_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "stare_robot.cli", "demos", "--task", "PushCube-v1",
            "--num", str(NUM), "--seed", str(SEED), "--out", str(out), "--quiet"]


def committed(out: Path) -> int:
    try:
        return len(EpisodeStore.open(out))
    except StoreError:  # not created yet
        return 0


def episode_hashes(out: Path) -> dict[str, str]:
    """episode id -> sha256 over every file of its committed version (names and bytes)."""
    result = {}
    store = EpisodeStore.open(out)
    for ep_id in store.episode_ids():
        root = Path(os.path.realpath(out / "episodes" / ep_id))
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
        result[ep_id] = digest.hexdigest()
    return result


def test_demos_killed_mid_run_then_rerun_completes_without_duplicates(tmp_path):
    out = tmp_path / "demos.zarr"
    proc = subprocess.Popen(demos_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while committed(out) < 2:
            assert proc.poll() is None, f"demos exited early: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no episode committed in 300 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # a crash: no cleanup runs
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    before = episode_hashes(out)
    assert 2 <= len(before) < NUM, "the kill must land mid-run"

    rerun = subprocess.run(demos_cmd(out), capture_output=True, text=True, timeout=600,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"+{len(before)} already in the store" in rerun.stdout

    store = EpisodeStore.open(out)
    seeds = sorted(int(ep.attrs[keys.ATTR_SEED]) for ep in store)
    assert seeds == list(range(SEED, SEED + NUM))  # exactly the requested ones, once each
    after = episode_hashes(out)
    assert {k: after[k] for k in before} == before  # committed episodes untouched
