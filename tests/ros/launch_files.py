"""Launch files without ``ros2 launch``: each is loaded with stand-ins for the ``launch`` /
``launch_ros`` classes it uses, which record what would be started (test helper).

    for context, nodes in launched_nodes(Path("launch/deploy.launch.py")):
        [n.kwargs["executable"] for n in nodes]      # for every combination of choice arguments
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import types
from pathlib import Path

import pytest


# --- stand-ins for launch / launch_ros: record, never run ---
class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


def _stub_modules() -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in
            ("launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions")}
    mods["launch"].LaunchDescription = lambda entities: list(entities)
    mods["launch.actions"].DeclareLaunchArgument = type("DeclareLaunchArgument", (_Recorded,), {})
    mods["launch.actions"].OpaqueFunction = type("OpaqueFunction", (_Recorded,), {})
    mods["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    mods["launch_ros.actions"].Node = type("Node", (_Recorded,), {})
    return mods


def load_launch_file(path: Path):
    with pytest.MonkeyPatch.context() as mp:
        for name, module in _stub_modules().items():
            mp.setitem(sys.modules, name, module)
        spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module, module.generate_launch_description()


def launched_nodes(path: Path, **fixed) -> list[tuple[dict, list]]:
    """(launch arguments, [Node records]) for every combination of the file's choice arguments
    (``fixed``: other arguments' values instead of their defaults; a combination it makes
    invalid, which the launch file refuses with ValueError, is left out)."""
    _, entities = load_launch_file(path)
    declared = [e for e in entities if type(e).__name__ == "DeclareLaunchArgument"]
    defaults = {d.args[0]: d.kwargs["default_value"] for d in declared}
    choices = {d.args[0]: d.kwargs["choices"] for d in declared if "choices" in d.kwargs}
    runs = []
    for combo in itertools.product(*choices.values()):
        context = {**defaults, **fixed, **dict(zip(choices, combo))}
        nodes = [e for e in entities if type(e).__name__ == "Node"]
        try:
            for opaque in (e for e in entities if type(e).__name__ == "OpaqueFunction"):
                nodes += opaque.kwargs["function"](context)
        except ValueError:
            if not fixed:
                raise
            continue
        runs.append((context, nodes))
    return runs
