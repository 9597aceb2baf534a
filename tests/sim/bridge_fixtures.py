"""Fixtures of the SimplerEnv-WidowX tests: the asset pack, unpacked once per session.

Test modules load it with ``pytest_plugins = ["bridge_fixtures"]``, as the server tests do: a second
``conftest.py`` would shadow the root one for the ``from conftest import ...`` lines of other tests.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from conftest import SHARED_ASSETS

BRIDGE_PACK = SHARED_ASSETS / "maniskill_widowx_bridge_assets.tgz"


@pytest.fixture(scope="session")
def bridge_assets(tmp_path_factory) -> Path:
    """``MS_ASSET_DIR`` pointing at the test asset pack unpacked into a temporary directory (never
    into the repository); restored afterwards. Skips when the pack is absent (it lives beside the
    project, at ../shared/assets/)."""
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
