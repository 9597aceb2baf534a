"""Step history the stage rules need (first value, previous value, run lengths, latches).

A family's rules are written once, over arrays with a leading time axis. They reach the past only
through a *history* object, which has two implementations with identical results:

- :class:`EpisodeBatch` – offline, vectorised over one or many concatenated episodes;
- :class:`OnlineHistory` – online, one step at a time (arrays of length 1), keeping small state.

This is what makes :class:`~stare_robot.stages.separator.StageTracker` give exactly the labels of
:func:`~stare_robot.stages.separator.segment`: both run the same rule code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class EpisodeBatch:
    """Bookkeeping for ``E`` episodes concatenated along time (``T = sum(lengths)`` steps)."""

    def __init__(self, lengths: Sequence[int] | np.ndarray):
        self.lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if self.lengths.size == 0 or (self.lengths <= 0).any():
            raise ValueError(f"episode lengths must be positive, got {self.lengths.tolist()}")
        self.ends = np.cumsum(self.lengths)  # (E,) exclusive
        self.starts = self.ends - self.lengths  # (E,)
        self.num_steps = int(self.ends[-1])
        self.episode_of_step = np.repeat(np.arange(self.lengths.size), self.lengths)  # (T,)
        self.start_of_step = self.starts[self.episode_of_step]  # (T,)
        self.index = np.arange(self.num_steps)
        self.is_start = self.index == self.start_of_step

    @property
    def num_episodes(self) -> int:
        return int(self.lengths.size)

    # --- history primitives (``name`` is unused offline; the online twin keys its state by it) ---

    def first(self, name: str, x: np.ndarray) -> np.ndarray:
        """Value of ``x`` at each step's episode start."""
        return np.repeat(x[self.starts], self.lengths, axis=0)

    def previous(self, name: str, x: np.ndarray) -> np.ndarray:
        """Value of ``x`` one step earlier; an episode's first step gets its own value."""
        out = np.empty_like(x)
        out[1:] = x[:-1]
        out[self.starts] = x[self.starts]
        return out

    def run_length(self, name: str, x: np.ndarray) -> np.ndarray:
        """(T,) length of the run of equal values of ``x`` (T,) ending at each step (>= 1)."""
        changed = self.is_start.copy()
        changed[1:] |= x[1:] != x[:-1]
        last_change = np.maximum.accumulate(np.where(changed, self.index, 0))
        return self.index - last_change + 1

    def latch(self, name: str, set_: np.ndarray, reset: np.ndarray, initial: Any) -> np.ndarray:
        """(T,) bool flip-flop: True after ``set_``, False after ``reset`` (set wins a tie); before
        either happens in an episode it holds ``initial`` (bool or (T,) bool, read at the start)."""
        decisive = set_ | reset
        last = np.maximum.accumulate(np.where(decisive, self.index, -1))
        seen = last >= self.start_of_step
        init = np.broadcast_to(np.asarray(initial, dtype=bool), (self.num_steps,))
        return np.where(seen, set_[np.maximum(last, 0)], init[self.start_of_step])


class OnlineHistory:
    """The same primitives for one episode fed step by step; every array has length 1."""

    def __init__(self) -> None:
        self._first: dict[str, np.ndarray] = {}
        self._prev: dict[str, np.ndarray] = {}
        self._run: dict[str, tuple[np.ndarray, int]] = {}
        self._latch: dict[str, np.ndarray] = {}
        self._pending: dict[str, Any] = {}  # values to become "previous" once the step is done

    def first(self, name: str, x: np.ndarray) -> np.ndarray:
        return self._first.setdefault(name, x.copy())

    def previous(self, name: str, x: np.ndarray) -> np.ndarray:
        self._pending[("prev", name)] = x.copy()
        return self._prev.get(name, x)

    def run_length(self, name: str, x: np.ndarray) -> np.ndarray:
        last = self._run.get(name)
        n = last[1] + 1 if last is not None and bool(last[0][0] == x[0]) else 1
        self._pending[("run", name)] = (x.copy(), n)
        return np.array([n])

    def latch(self, name: str, set_: np.ndarray, reset: np.ndarray, initial: Any) -> np.ndarray:
        state = self._latch.get(name)
        if state is None:
            state = np.asarray(initial, dtype=bool).reshape(-1)[:1]
        state = np.where(set_, True, np.where(reset, False, state))
        self._pending[("latch", name)] = state
        return state

    def commit(self) -> None:
        """Close the current step: what was seen now becomes the past of the next step."""
        for (kind, name), value in self._pending.items():
            {"prev": self._prev, "run": self._run, "latch": self._latch}[kind][name] = value
        self._pending.clear()
