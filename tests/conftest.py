"""Shared test fixtures.

Markers (pyproject, --strict-markers): ``sim`` needs ManiSkill3, ``ros`` starts rclpy nodes,
``slow`` takes more than ~30 s. The default run (README) deselects ``slow`` only.
"""

from __future__ import annotations

import os
import random
import tarfile
from pathlib import Path

import pytest

# One random DDS domain per test session so parallel runs on a machine never cross-talk.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

# rclpy before pyrealsense2, always: a process that loads pyrealsense2 first and then runs
# rclpy.init() segfaults in its exit handlers (free() of a bad pointer; measured with both
# wheels here), so the whole test session would end with status 139 after every test passed.
try:
    import rclpy  # noqa: F401
except ImportError:  # the ros extra is not installed
    pass

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ASSETS = REPO_ROOT.parent / "shared" / "assets"
BRIDGE_PACK = SHARED_ASSETS / "maniskill_widowx_bridge_assets.tgz"


@pytest.fixture(autouse=True)
def single_torch_thread():
    """One intra-op torch thread per test: on 2 shared cores two threads stall each other (measured
    7-12x slower under load). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """Factory for real motion-planner demo stores, generated once per session and cached.

    ``demo_store("PushCube-v1", num=3, seed=0, obs_mode="state") -> Path`` of a Zarr episode store.
    """
    cache: dict[tuple, Path] = {}

    def make(task: str, num: int = 3, seed: int = 0, obs_mode: str = "state") -> Path:
        key = (task, num, seed, obs_mode)
        if key not in cache:
            from stare_robot.sim.demos import generate_demos

            out = tmp_path_factory.mktemp("demos") / f"{task}-{obs_mode}-{num}-{seed}.zarr"
            generate_demos(task=task, num=num, seed=seed, out=out, obs_mode=obs_mode, progress=False)
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture(scope="session")
def bridge_assets(tmp_path_factory) -> Path:
    """``MS_ASSET_DIR`` (also for child processes) pointing at the WidowX/Bridge asset pack,
    unpacked once per session into a temporary directory (never into the repository); restored
    afterwards. Skips when the pack is absent (it lives beside the project, at ../shared/assets/)."""
    if not BRIDGE_PACK.is_file():
        pytest.skip(f"the WidowX/Bridge asset pack is not at {BRIDGE_PACK}")
    root = tmp_path_factory.mktemp("maniskill_assets")
    with tarfile.open(BRIDGE_PACK) as tar:
        tar.extractall(root, filter="data")
    assets = root / "simpler_assets"  # ManiSkill reads $MS_ASSET_DIR/data
    before = os.environ.get("MS_ASSET_DIR")
    os.environ["MS_ASSET_DIR"] = str(assets)
    yield assets
    if before is None:
        os.environ.pop("MS_ASSET_DIR", None)
    else:
        os.environ["MS_ASSET_DIR"] = before
