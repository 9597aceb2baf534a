"""Writer process driven by the store crash/concurrency tests (run as a script, never imported
by library code). Episode contents are a pure function of (seed, step) so any process can check
what it reads.

    python store_writer_proc.py kill  STORE SIGNAL_DIR   # commit seed 2, then hang mid-episode
    python store_writer_proc.py poll  STORE SIGNAL_DIR N # N episodes, handshake mid-episode each
    python store_writer_proc.py race  STORE SIGNAL_DIR N TAG  # wait for "go", commit N episodes
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

STEPS = 40
IMAGE = (24, 24, 3)


def make_step(seed: int, t: int) -> dict[str, np.ndarray]:
    """Step t of episode ``seed``: every value non-zero, so a missing chunk (zeros) shows."""
    base = seed * 1000 + t + 1
    return {
        "obs/base_camera/rgb": np.full(IMAGE, (base % 250) + 1, np.uint8),
        "obs/state": np.full(5, base, np.float32),
        "action": np.arange(1, 8, dtype=np.float32) * base,
        "stage": np.int16(t // 10 + 1),
        "timestamp": np.float64(0.05 * (t + 1)),
    }


def expected(seed: int) -> dict[str, np.ndarray]:
    steps = [make_step(seed, t) for t in range(STEPS)]
    return {key: np.stack([s[key] for s in steps]) for key in steps[0]}


def write_episode(store, seed: int, on_midway=None, **attrs) -> str:
    with store.new_episode(attrs={"seed": seed, **attrs}) as ep:
        for t in range(STEPS):
            ep.append(make_step(seed, t))
            if t == STEPS // 2 and on_midway is not None:
                on_midway()
        ep.set_attrs(success=bool(seed % 2 == 0))
    return ep.episode_id


def wait_for(path: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {path}")
        time.sleep(0.01)


def main(argv: list[str]) -> int:
    from stare_robot.data.store import EpisodeStore

    mode, store_path, signal_dir = argv[0], argv[1], Path(argv[2])
    store = EpisodeStore.open(store_path)
    if mode == "kill":
        write_episode(store, seed=2)

        def hang() -> None:
            (signal_dir / "mid").write_text("mid-episode")
            time.sleep(120)  # the test SIGKILLs us here

        write_episode(store, seed=3, on_midway=hang)
    elif mode == "poll":
        for k in range(int(argv[3])):

            def handshake(k: int = k) -> None:
                (signal_dir / f"mid_{k}").write_text("")
                wait_for(signal_dir / f"ack_{k}")

            write_episode(store, seed=10 + k, on_midway=handshake)
    elif mode == "race":
        count, tag = int(argv[3]), argv[4]
        (signal_dir / f"ready_{tag}").write_text("")
        wait_for(signal_dir / "go")
        for i in range(count):
            write_episode(store, seed=i, writer=tag)
    else:
        sys.exit(f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
