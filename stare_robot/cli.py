"""The ``stare-robot`` command: a dispatcher to one module per sub-command.

Each sub-command lives in the module that owns it and exposes ``main(argv) -> int``; this file only
maps names to those modules and imports lazily, so ``stare-robot stages ...`` never pays for torch
or ManiSkill3.

This file is the composition root: it names modules of every layer (``stare_robot.sim.*``,
``stare_robot.server.*``) as strings and imports only the one a command runs. That is allowed
here and nowhere else in the core; the import contracts (pyproject.toml, docs/architecture.md)
do not see string imports, and ``stare_robot.cli`` never imports those layers statically.

    stare-robot demos --task PushCube-v1 --num 100 --seed 0 --out data/pushcube.zarr
    stare-robot stages annotate data/pushcube.zarr
"""

from __future__ import annotations

import importlib
import sys

from stare_robot import __version__
from stare_robot.names import did_you_mean

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "demos": ("stare_robot.sim.demos", "generate motion-planner demonstrations into a Zarr store"),
    "stages": ("stare_robot.stages.cli", "annotate / inspect STARE stages and keyframes"),
    "store": ("stare_robot.data.cli", "list / inspect an episode store"),
    "serve": ("stare_robot.server.cli", "serve a policy checkpoint over HTTP + websocket"),
    "ipi": ("stare_robot.sim.ipi", "the main job: demos -> SFT -> STA-TPO -> STA-PPO -> report"),
    "train": ("stare_robot.train.cli", "train a policy: sft, tpo, ppo (stare-robot train --help)"),
    "eval": ("stare_robot.sim.evaluate", "evaluate a policy checkpoint by rollouts in simulation"),
    "rollouts": ("stare_robot.sim.collect", "collect sampled policy rollouts for TPO / PPO"),
    "pairs": ("stare_robot.train.preferences", "build preference pairs (TPO) from episode stores"),
    "report": ("stare_robot.eval.cli", "side-by-side reports: sim2real (sim eval vs recorded episodes)"),
    "tasks": ("stare_robot.sim.task_table", "list every task: stage family, stages, eval horizon"),
    "robot": ("stare_robot_ros.operator_cli", "operator commands for a running ROS 2 graph"),
}


def usage(prog: str, noun: str, table: dict[str, tuple[str, str]]) -> str:
    width = max(len(n) for n in table)
    lines = [f"usage: {prog} {noun.upper()} [ARGS...]", "", f"{noun}s:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in table.items()]
    lines += ["", f"Run `{prog} {noun.upper()} --help` for its options"
              + (", `stare-robot --version` for the version." if prog == "stare-robot" else ".")]
    return "\n".join(lines)


def dispatch(prog: str, noun: str, table: dict[str, tuple[str, str]], argv: list[str]) -> int:
    """Run ``table[argv[0]]``'s module ``main(argv[1:])``; unknown names get a did-you-mean."""
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(prog, noun, table))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in table:
        hint = did_you_mean(name, table)
        print(f"{prog}: unknown {noun} '{name}'.{hint}\n\n{usage(prog, noun, table)}", file=sys.stderr)
        return 2
    target = table[name][0]
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as err:
        # only the command's own package missing (an extra not installed) gets this message;
        # a missing dependency deeper down keeps its traceback
        if err.name is None or not target.startswith(err.name):
            raise
        print(f"{prog} {name}: needs {target}, which is not installed ({err}). Install the "
              "extra that provides it (scripts/setup.sh installs all of them).", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        print(f"stare-robot {__version__}")
        return 0
    return dispatch("stare-robot", "command", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
