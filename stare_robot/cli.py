"""The ``stare-robot`` command: a dispatcher to one module per sub-command.

Each sub-command lives in the module that owns it and exposes ``main(argv) -> int``; this file only
maps names to those modules and imports lazily, so ``stare-robot stages ...`` never pays for torch
or ManiSkill3.

    stare-robot demos --task PushCube-v1 --num 100 --seed 0 --out data/pushcube.zarr
    stare-robot stages annotate data/pushcube.zarr
"""

from __future__ import annotations

import difflib
import importlib
import sys

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "demos": ("stare_robot.sim.demos", "generate motion-planner demonstrations into a Zarr store"),
    "stages": ("stare_robot.stages.cli", "annotate / inspect STARE stages and keyframes"),
    "store": ("stare_robot.data.cli", "list / inspect an episode store"),
    "serve": ("stare_robot.server.cli", "serve a policy checkpoint over HTTP + websocket"),
    "train": ("stare_robot.train.cli", "train a policy: sft (more methods to come)"),
    "eval": ("stare_robot.sim.evaluate", "evaluate a policy checkpoint by rollouts in simulation"),
    "rollouts": ("stare_robot.sim.collect", "collect sampled policy rollouts for TPO / PPO"),
    "pairs": ("stare_robot.train.preferences", "build preference pairs (TPO) from episode stores"),
    "report": ("stare_robot.eval.cli", "side-by-side reports: sim2real (sim eval vs recorded episodes)"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: stare-robot COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `stare-robot COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"stare-robot: unknown command '{name}'.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
