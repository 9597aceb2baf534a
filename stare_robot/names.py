"""Helpers for errors about names: every registry (commands, tasks, policies, stage families, robot
profiles) answers a bad name the same way, with the closest valid one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: object, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices`` to ``name``, or ``""`` if none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=cutoff)
    return f" Did you mean '{close[0]}'?" if close else ""
