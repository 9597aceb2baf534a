"""``stare-robot train METHOD ...``: one module per training method, each with ``main(argv)``.

    stare-robot train sft --data data/pushcube.zarr --out runs/sft_pushcube
"""

from __future__ import annotations

import difflib
import importlib
import sys

# method -> (module, one-line help); imported only when that method runs
METHODS: dict[str, tuple[str, str]] = {
    "sft": ("stare_robot.train.sft", "supervised fine-tuning (behaviour cloning) on demonstrations"),
    "tpo": ("stare_robot.train.tpo", "preference fine-tuning: STA-TPO (--no-stage-aware: TPO)"),
}


def _usage() -> str:
    lines = ["usage: stare-robot train METHOD [ARGS...]", "", "methods:"]
    lines += [f"  {name:<6}  {help_}" for name, (_, help_) in METHODS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"stare-robot train: unknown method '{name}'.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    return int(importlib.import_module(METHODS[name][0]).main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
