"""The distribution's layout: every package is installed, and the core stays free of sim/ROS."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from conftest import REPO_ROOT

# where each installed package prefix lives in the source tree (pyproject's package-dir)
ROOTS = {"stare_robot": "stare_robot", "stare_robot.sim": "sim", "stare_robot.server": "server"}


def _packages_in_tree() -> set[str]:
    found = set()
    for prefix, folder in ROOTS.items():
        base = REPO_ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([prefix, *rel.parts]) if rel.parts else prefix)
    return found


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    missing = _packages_in_tree() - listed
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_core_library_imports_neither_simulator_nor_ros():
    # DESIGN.md: stare_robot core imports neither rclpy nor mani_skill (one direction of dependency).
    code = (
        "import sys, stare_robot, stare_robot.keys, stare_robot.cli, stare_robot.policies.base\n"
        "import stare_robot.data.store, stare_robot.data.dataset, stare_robot.stages\n"
        "import stare_robot.robots.commander, stare_robot.eval.metrics, stare_robot.client\n"
        "bad = [m for m in ('mani_skill', 'sapien', 'rclpy', 'stare_robot.sim', 'stare_robot.server')\n"
        "       if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported {out.stdout.strip()}"
