"""The layer rule is executable: import-linter's contracts (pyproject.toml) hold, and they fail on
a violation.

``sim/`` and ``server/`` install as ``stare_robot.sim`` / ``stare_robot.server`` through
setuptools' package-dir mapping, which the import graph builder (grimp) does not follow in an
editable install. So the check runs on a staged copy of the installed layout. Run it by hand with
``python tests/test_layering.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
CORE_CONTRACT = "core-imports-no-sim-server-ros"


def stage(dst: Path) -> Path:
    """Copy the package into ``dst`` as it is installed (sim/ and server/ inside stare_robot/)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "stare_robot", dst / "stare_robot", ignore=skip)
    shutil.copytree(ROOT / "sim", dst / "stare_robot" / "sim", ignore=skip)
    shutil.copytree(ROOT / "server", dst / "stare_robot" / "server", ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def lint_imports(staged: Path) -> subprocess.CompletedProcess:
    assert LINT.exists(), f"{LINT} is missing: install the dev extra (pip install -e '.[dev]')"
    # PYTHONPATH first: the staged copy, not the editable install, is what grimp walks
    env = {"PYTHONPATH": str(staged), "PATH": str(LINT.parent)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=staged, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_the_contracts_hold(tmp_path):
    result = lint_imports(stage(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    assert f"{len(contracts())} kept" in result.stdout


def test_a_core_module_importing_the_simulator_breaks_the_contract(tmp_path):
    staged = stage(tmp_path)
    victim = staged / "stare_robot" / "stages" / "geometry.py"
    # a function-level import counts too: it is how the core used to reach into the sim layer
    victim.write_text(victim.read_text() + "\n\ndef _leak():\n    import stare_robot.sim.env\n")
    result = lint_imports(staged)
    assert result.returncode != 0
    assert "stare_robot.stages.geometry -> stare_robot.sim.env" in result.stdout
    assert "BROKEN" in result.stdout


def test_the_sim_layer_importing_ros_breaks_the_contract(tmp_path):
    staged = stage(tmp_path)
    victim = staged / "stare_robot" / "sim" / "tasks.py"
    victim.write_text(victim.read_text() + "\nimport rclpy  # noqa\n")
    result = lint_imports(staged)
    assert result.returncode != 0 and "stare_robot.sim.tasks -> rclpy" in result.stdout


def test_every_core_module_is_under_the_core_contract():
    """A new core subpackage must be listed, or it would escape the rule silently."""
    listed = set(contracts()[CORE_CONTRACT]["source_modules"])
    core = {f"stare_robot.{p.stem}" for p in (ROOT / "stare_robot").iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert core == listed, f"unlisted: {sorted(core - listed)}, stale: {sorted(listed - core)}"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = lint_imports(stage(Path(tmp)))
        print(out.stdout, out.stderr)
        raise SystemExit(out.returncode)
