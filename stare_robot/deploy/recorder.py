"""Record a robot episode into an episode store without blocking the caller.

The episode recorder node hands each observation frame to :meth:`EpisodeRecorder.add_frame`
(returns at once); a writer thread runs the online stage tracker (gripper keyframes and
motion/skill stages, :class:`stare_robot.stages.StageTracker`) and appends to the store's episode
writer. :meth:`stop` drains the queue and commits the episode atomically; a full queue drops the
frame and counts it (``dropped``) instead of stalling the graph.

Actions are aligned the way training expects: a frame's ``action`` is the first action commanded
after that observation (a hold when none came before the next frame), so a frame is written once
the next one arrives; the last frame, which no action followed, is dropped at stop. "After" is by
stamp when the action says which observation it followed (``after_stamp``: it belongs to the newest
frame stamped at or before that), else by receive time (``received``, monotonic seconds; default
the call's time). Stamps make the pairing exact whatever order messages arrive in; receive times
cover actions from senders that do not stamp them.

    rec = EpisodeRecorder("data/robot.zarr", store_attrs={"task": "PushCube-v1"})
    rec.start({"instruction": "push the cube"})
    rec.add_frame(stamp, {"obs/state": ..., "obs/joint_pos": ..., "obs/gripper": ...})
    rec.add_action(action)
    rec.label(True)
    episode_id = rec.stop()
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stare_robot import keys
from stare_robot.data.store import EpisodeStore
from stare_robot.stages import StageTracker

_STOP = object()
MAX_ACTIONS_BUFFERED = 1000  # actions waiting for their frame (bounded if frames stop coming)


class RecorderError(RuntimeError):
    """A recorder call out of order (start while recording, stop while idle, ...)."""


@dataclass
class RecordedFrame:
    stamp: float  # seconds, the observation's header stamp
    arrays: dict[str, np.ndarray]  # one step, no time axis (keys from stare_robot.keys)
    action: np.ndarray | None = None
    received: float = 0.0  # monotonic seconds when its first message arrived


class EpisodeRecorder:
    def __init__(
        self,
        store_path: str | Path,
        store_attrs: Mapping[str, Any] | None = None,
        stage_family: str = "gripper",
        max_queue: int = 256,
        action_dim: int = keys.ACTION_DIM,
    ):
        self.store = EpisodeStore.create(store_path, attrs=dict(store_attrs or {}))
        self.stage_family = stage_family
        self.action_dim = action_dim
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._pending: RecordedFrame | None = None  # awaiting its action
        # (received, after_stamp or None, action), in arrival order
        self._actions: deque[tuple[float, float | None, np.ndarray]] = deque(maxlen=MAX_ACTIONS_BUFFERED)
        self._writer = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._success: bool | None = None
        self._gripper_action = keys.GRIPPER_OPEN
        self.tracker = StageTracker(stage_family)
        self.dropped = 0  # frames lost to a full queue (the writer could not keep up)
        self.written = 0  # frames appended in the current episode
        self.received = 0  # frames offered in the current episode

    @property
    def recording(self) -> bool:
        return self._writer is not None

    def start(self, episode_attrs: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            if self.recording:
                raise RecorderError("already recording; stop the current episode first")
            self.tracker.reset()
            self._success, self._pending, self._error = None, None, None
            self._actions.clear()
            self.dropped = self.written = self.received = 0
            self._gripper_action = keys.GRIPPER_OPEN
            self._writer = self.store.new_episode(attrs=dict(episode_attrs or {}))
            self._thread = threading.Thread(target=self._write_loop, args=(self._writer,), daemon=True)
            self._thread.start()

    def add_frame(self, stamp: float, arrays: Mapping[str, np.ndarray], received: float | None = None) -> bool:
        """Offer one observation frame (``received``: when its first message arrived); False if
        not recording, a repeat stamp, or dropped."""
        received = time.monotonic() if received is None else float(received)
        with self._lock:
            if not self.recording:
                return False
            if self._pending is not None and stamp <= self._pending.stamp:
                return False  # a re-published (idle) state, or out of order
            self.received += 1
            previous = self._pending
            self._pending = RecordedFrame(float(stamp), dict(arrays), received=received)
            if previous is not None:
                previous.action = self._take_action(previous, self._pending)
                self._enqueue(previous)
            return True

    def add_action(self, action, received: float | None = None, after_stamp: float | None = None) -> None:
        """An action commanded at ``received`` (default now), after the observation stamped
        ``after_stamp`` (None: unknown); the first one after a frame is that frame's action."""
        received = time.monotonic() if received is None else float(received)
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (self.action_dim,) or not np.all(np.isfinite(action)):
            return  # malformed actions are never executed, so never recorded
        with self._lock:
            if self.recording:
                self._actions.append((received, None if after_stamp is None else float(after_stamp), action))

    def _take_action(self, frame: RecordedFrame, following: RecordedFrame | None) -> np.ndarray | None:
        """``frame``'s action: the first that came after it and before ``following`` (None: the
        robot held). Every action before ``following`` is used up, the last setting the hold's
        gripper; later ones stay for the frames to come."""

        def before(r: float, stamp: float | None, f: RecordedFrame | None) -> bool:
            if f is None:
                return True
            return stamp < f.stamp if stamp is not None else r < f.received

        chosen, keep = None, deque(maxlen=MAX_ACTIONS_BUFFERED)
        for r, stamp, action in self._actions:
            if not before(r, stamp, following):
                keep.append((r, stamp, action))
                continue
            if chosen is None and not before(r, stamp, frame):
                chosen = action
            self._gripper_action = float(action[-1])
        self._actions = keep
        return chosen

    def label(self, success: bool) -> None:
        with self._lock:
            if not self.recording:
                raise RecorderError("not recording: label an episode between start and stop")
            self._success = bool(success)

    def _enqueue(self, frame: RecordedFrame) -> None:
        if frame.action is None:  # nothing commanded before the next frame: the robot held
            frame.action = np.zeros(self.action_dim, np.float32)
            frame.action[-1] = self._gripper_action
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.dropped += 1

    def stop(self, timeout: float = 60.0) -> str | None:
        """Drain, annotate and commit; returns the episode id (None if no complete frame)."""
        with self._lock:
            if not self.recording:
                raise RecorderError("not recording: call start first")
            writer, self._writer = self._writer, None
            if self._pending is not None:
                self._pending.action = self._take_action(self._pending, None)
                if self._pending.action is not None:
                    self._enqueue(self._pending)
            self._pending = None
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._error is not None or len(writer) == 0:
            writer.discard()
            if self._error is not None:
                raise RecorderError(f"episode not saved: writing failed: {self._error}") from self._error
            return None
        attrs = {
            keys.ATTR_STAGE_FAMILY: self.tracker.family.name,
            keys.ATTR_STAGE_NAMES: list(self.tracker.family.stage_names),
            keys.ATTR_KEYFRAMES: [int(k) for k in self.tracker.keyframes],
        }
        if self._success is not None:
            attrs[keys.ATTR_SUCCESS] = self._success
        writer.set_attrs(attrs)
        return writer.commit()

    def discard(self) -> None:
        """Abandon the current episode (nothing becomes visible)."""
        with self._lock:
            writer, self._writer, self._pending = self._writer, None, None
        if writer is not None:
            self._queue.put(_STOP)
            self._thread.join(10)
            writer.discard()

    def _write_loop(self, writer) -> None:
        t0 = None
        while True:
            frame = self._queue.get()
            if frame is _STOP:
                return
            if self._error is not None:
                continue
            try:
                t0 = frame.stamp if t0 is None else t0
                step = dict(frame.arrays)
                signal = {k: step[k] for k in (keys.OBS_GRIPPER, keys.OBS_JOINT_POS) if k in step}
                signal[keys.ACTION] = frame.action
                stage = self.tracker.update(signal)
                step[keys.ACTION] = frame.action
                step[keys.STAGE] = np.int16(stage)
                step[keys.TIMESTAMP] = np.float64(frame.stamp - t0)
                writer.append(step)
                self.written += 1
            except Exception as err:  # noqa: BLE001 (reported at stop; the graph keeps running)
                self._error = err
