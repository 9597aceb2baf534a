"""Execute action chunks step by step; hold the robot still on any fault, resume when it clears.

:class:`ControlLoop` is the policy client node's tick, without ROS::

    loop = ControlLoop(policy, action_dim=7, request_timeout_s=0.5, wait_s=0.04)
    command = loop.tick(now, observation)      # or loop.tick(now, StaleObservation("..."))
    if command.action is not None:             # None: a lock-step hold, send nothing
        publish(command.action)                # a chunk step, or a hold when command.hold

Faults that make it hold (zero end-effector motion, gripper kept where it was last commanded —
never a repeat of an old action): a stale observation, the server slow (no answer within
``request_timeout_s``), down or answering with an error, and a malformed or non-finite chunk.
Each new kind of fault is counted once (``ExecutorStatus``); the next good chunk resumes.

What "hold" means depends on the clock. In real time the world keeps moving, so a hold is a
zero-motion command sent every tick. In lock-step (``lockstep=True``: the simulator advances one
step per command) any command, a hold included, is a real physics step, so holding means sending
nothing: the tick returns a ``Command`` with ``action=None``. The world waits with the robot, so a
stale observation there does not void the rest of a chunk, and a late answer is still valid.

``execute_steps`` (None = the whole chunk) executes only the first steps of each chunk before
asking again, as ``stare-robot eval --execute-steps`` does in simulation; :meth:`ControlLoop.reset`
starts a new episode (queued steps and any outstanding answer are forgotten).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stare_robot.client import PolicyAuthError
from stare_robot.deploy.pairing import StaleObservation
from stare_robot.keys import ACTION_DIM, GRIPPER_OPEN
from stare_robot.policies.base import Observation, Policy
from stare_robot.validation import validate_chunk


@dataclass(frozen=True)
class Hold:
    reason: str


@dataclass(frozen=True)
class Command:
    """One action to publish: a chunk step, or a hold (``hold`` = True, ``reason`` says why)."""

    action: np.ndarray | None  # (action_dim,) float64; None = send nothing (a lock-step hold)
    hold: bool = False
    reason: str = ""


@dataclass
class ExecutorStatus:
    holding: bool = False
    reason: str = ""
    actions_sent: int = 0
    holds_sent: int = 0  # hold commands published (never in lock-step)
    chunks_accepted: int = 0
    chunk_tag: Any = None  # the ``tag`` given with the observation the newest chunk answered
    faults: int = 0  # times a new fault began (a change of the hold reason's kind)
    fault_log: list[str] = field(default_factory=list)  # the last few fault reasons


class ChunkExecutor:
    """A queue of validated chunk steps plus the hold action."""

    def __init__(self, action_dim: int = ACTION_DIM, max_abs_action: float = 1e3):
        self.action_dim = action_dim
        self.max_abs_action = max_abs_action
        self.gripper = GRIPPER_OPEN  # last gripper command actually sent (hold keeps it)
        self._queue: deque[np.ndarray] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def validate(self, chunk: Any) -> np.ndarray:
        """(chunk, action_dim) finite float64, else ValueError saying what is wrong (the rules of
        :func:`stare_robot.validation.validate_chunk`, as on the server)."""
        return validate_chunk(chunk, self.action_dim, max_abs=self.max_abs_action,
                              dtype=np.float64)

    def load(self, chunk: Any, steps: int | None = None) -> None:
        """Replace the queue with a validated chunk's first ``steps`` actions (None = all);
        ValueError (the whole chunk is checked) leaves the queue empty."""
        self._queue.clear()
        self._queue.extend(self.validate(chunk)[:steps])

    def clear(self) -> None:
        self._queue.clear()

    def pop(self) -> np.ndarray:
        action = self._queue.popleft()
        self.gripper = float(action[-1])
        return action

    def hold_action(self) -> np.ndarray:
        """Zero end-effector delta, gripper as last commanded."""
        action = np.zeros(self.action_dim)
        action[-1] = self.gripper
        return action


class AsyncPredictor:
    """Runs ``policy.predict`` on one background thread so a slow server never blocks a tick."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self.started: float | None = None  # monotonic time of the outstanding request
        self.tag: Any = None  # the caller's label of the outstanding request's observation
        self.busy = False

    def submit(self, obs: Observation, now: float, tag: Any = None) -> None:
        assert not self.busy, "one request at a time"
        self.busy, self.started, self.tag = True, now, tag
        self._done.clear()
        threading.Thread(target=self._run, args=(obs,), daemon=True).start()

    def _run(self, obs: Observation) -> None:
        try:
            self._result, self._error = self.policy.predict(obs), None
        except Exception as err:  # noqa: BLE001 (reported to the control loop, never raised here)
            self._result, self._error = None, err
        self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(max(0.0, timeout))

    def take(self) -> tuple[Any, BaseException | None]:
        """The finished request's (chunk, error); frees the predictor for the next request."""
        assert self._done.is_set()
        self.busy = False
        return self._result, self._error


class ControlLoop:
    """One tick per control period: next chunk step, a new request, or a hold."""

    def __init__(
        self,
        policy: Policy,
        action_dim: int = ACTION_DIM,
        request_timeout_s: float = 0.5,
        wait_s: float = 0.0,
        retry_period_s: float = 0.2,
        lockstep: bool = False,
        sensor_grace_s: float = 1.0,
        clock=time.monotonic,
        execute_steps: int | None = None,
        auth_retry_period_s: float | None = None,
    ):
        if execute_steps is not None and execute_steps < 1:
            raise ValueError(f"execute_steps must be >= 1 (or None for the whole chunk), got {execute_steps}")
        self.execute_steps = execute_steps
        self.executor = ChunkExecutor(action_dim)
        self.predictor = AsyncPredictor(policy)
        self.request_timeout_s = request_timeout_s
        self.wait_s = wait_s
        self.retry_period_s = retry_period_s
        self.auth_retry_period_s = auth_retry_period_s  # after a refused token (None = retry_period_s)
        self.lockstep = lockstep
        # lock-step: a step's messages arrive one by one, so a brief mismatch is normal waiting;
        # only a stale observation lasting longer than this is reported as a fault
        self.sensor_grace_s = sensor_grace_s
        self._stale_since: float | None = None
        self.clock = clock
        self.status = ExecutorStatus()
        self._retry_at = -np.inf
        self._late = False  # the outstanding request already timed out (real time: discard its answer)

    def tick(self, now: float, obs: Observation | StaleObservation, tag: Any = None) -> Command:
        """The command for this control period. ``tag`` labels ``obs`` (e.g. its sensor stamp);
        a chunk computed from it reports the tag in ``status.chunk_tag``."""
        if isinstance(obs, StaleObservation):
            return self._stale(now, obs)
        self._stale_since = None
        if len(self.executor):
            return self._act(self.executor.pop())
        if not self.predictor.busy:
            if now < self._retry_at:
                return self._hold(self.status.reason or "waiting to retry the server")
            self.predictor.submit(obs, self.clock(), tag)  # request age is wall time, not `now`
            self._late = False
        if not self.predictor.wait(self.wait_s):
            waited = self.clock() - self.predictor.started
            if waited > self.request_timeout_s:
                self._late = True
                return self._hold(f"server slow: no answer for {waited:.2f} s "
                                  f"(request_timeout_s = {self.request_timeout_s:g})")
            return self._hold("waiting for the server")
        chunk, error = self.predictor.take()
        if error is not None:
            if isinstance(error, PolicyAuthError):  # named: a retry cannot fix it, the operator can
                self._retry_at = now + (self.auth_retry_period_s or self.retry_period_s)
                return self._hold(f"authentication failed: {error}")
            self._retry_at = now + self.retry_period_s
            return self._hold(f"server error: {type(error).__name__}: {error}")
        if self._late and not self.lockstep:  # answered after the timeout: its observation is too old
            return self.tick(now, obs, tag)
        try:
            self.executor.load(chunk, self.execute_steps)
        except ValueError as err:
            self._retry_at = now + self.retry_period_s
            return self._hold(f"bad chunk from the server: {err}")
        self.status.chunks_accepted += 1
        self.status.chunk_tag = self.predictor.tag
        return self._act(self.executor.pop())

    def reset(self) -> None:
        """A new episode: drop the queued chunk steps, any outstanding request's answer (it was
        computed for the old episode) and the retry wait; the gripper hold value reopens."""
        self.executor.clear()
        self.executor.gripper = GRIPPER_OPEN
        if self.predictor.busy:  # its thread finishes into the discarded predictor
            self.predictor = AsyncPredictor(self.predictor.policy)
        self._retry_at = -np.inf
        self._stale_since = None
        self._late = False

    def _stale(self, now: float, obs: StaleObservation) -> Command:
        if not self.lockstep:
            self.executor.clear()  # sensors stale: never run the rest of a chunk blind
            return self._hold(f"stale observation: {obs.reason}")
        if self._stale_since is None:
            self._stale_since = now
        if now - self._stale_since <= self.sensor_grace_s:
            return self._hold(f"waiting for the graph: {obs.reason}")
        return self._hold(f"stale observation: {obs.reason}")

    def _act(self, action: np.ndarray) -> Command:
        self.status.holding, self.status.reason = False, ""
        self.status.actions_sent += 1
        return Command(action)

    def _hold(self, reason: str) -> Command:
        # a fault begins when its kind (the text before the first colon) changes: the details
        # (ages in ms, request ids) differ from tick to tick within one fault
        kind = reason.split(":", 1)[0]
        if kind != self.status.reason.split(":", 1)[0] and not reason.startswith("waiting"):
            self.status.faults += 1
            self.status.fault_log = (self.status.fault_log + [reason])[-10:]
        self.status.holding, self.status.reason = True, reason
        action = None if self.lockstep else self.executor.hold_action()
        self.status.holds_sent += action is not None
        return Command(action, hold=True, reason=reason)
