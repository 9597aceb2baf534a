"""The inference worker: one dedicated thread owns the policy; the event loop never runs the model.

Requests from every connection (HTTP and websocket) go into one queue. With ``max_batch_size > 1``
the worker micro-batches them into a single ``predict_batch`` call: it takes whatever is queued and,
only while it holds fewer requests than clients are connected, waits up to ``max_wait_ms`` for the
rest. So one robot never waits, and N robots in lock-step share one forward pass.
``Policy.predict_batch`` must equal per-observation ``predict`` (the Policy contract), so batching
never changes an answer.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stare_robot.policies.base import Policy, PolicyMetadata
from stare_robot.validation import ChunkError, validate_chunk

logger = logging.getLogger("stare_robot.server")


class ModelError(RuntimeError):
    """The policy raised, or returned something that is not a finite action chunk (HTTP 500)."""


@dataclass(frozen=True)
class InferenceResult:
    actions: np.ndarray  # float32 (chunk_size, action_dim)
    queue_ms: float  # submitted -> its batch started
    inference_ms: float  # the policy call for the whole batch
    batch_size: int


@dataclass
class _Job:
    obs: dict[str, Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    submitted: float


_STOP = object()


class PeerTracker:
    """How many clients are connected: open websockets + HTTP peers seen within a time window."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last_seen: dict[str, float] = {}
        self._streams = 0
        self._lock = threading.Lock()

    def seen(self, peer: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._last_seen[peer] = now
            if len(self._last_seen) > 4096:
                self._prune(now)

    def stream_opened(self) -> None:
        with self._lock:
            self._streams += 1

    def stream_closed(self) -> None:
        with self._lock:
            self._streams -= 1

    def count(self) -> int:
        with self._lock:
            self._prune(time.monotonic())
            return len(self._last_seen) + self._streams

    def _prune(self, now: float) -> None:
        old = [p for p, t in self._last_seen.items() if now - t > self.window_s]
        for p in old:
            del self._last_seen[p]


def check_actions(actions: Any, meta: PolicyMetadata) -> np.ndarray:
    """The policy's output must be a finite chunk of the advertised shape (robot safety)."""
    try:
        return validate_chunk(actions, meta.action_dim, chunk_size=meta.chunk_size)
    except ChunkError as e:
        raise ModelError(f"policy returned a bad chunk: {e}") from None


class InferenceWorker:
    """Runs ``policy.predict`` / ``predict_batch`` on a dedicated thread; ``await submit(obs)``."""

    def __init__(
        self,
        policy: Policy,
        metadata: PolicyMetadata,
        *,
        max_batch_size: int = 1,
        max_wait_ms: float = 0.0,
        connected_clients: Callable[[], int] = lambda: 1,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.policy = policy
        self.metadata = metadata
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.connected_clients = connected_clients
        self.on_batch = on_batch  # (batch_size, inference seconds) -> None, for metrics
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stare-inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    async def submit(self, obs: dict[str, Any]) -> InferenceResult:
        """Queue one checked observation; resolves with its actions or raises ModelError."""
        if self._thread is None:
            raise ModelError("inference worker is not running")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Job(obs, future, loop, time.perf_counter()))
        return await future

    # --- worker thread ---

    def _run(self) -> None:
        while not self._stopping:
            job = self._queue.get()
            if job is _STOP:
                break
            self._infer(self._collect(job))
        # answer whatever is still queued so no caller hangs at shutdown
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                self._deliver(job, ModelError("server is shutting down"))

    def _collect(self, first: _Job) -> list[_Job]:
        batch = [first]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                # wait only while more connected clients could still join this batch
                want = min(self.max_batch_size, self.connected_clients())
                remaining = deadline - time.perf_counter()
                if len(batch) >= want or remaining <= 0:
                    break
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if job is _STOP:
                self._stopping = True
                break
            batch.append(job)
        return batch

    def _infer(self, batch: list[_Job]) -> None:
        start = time.perf_counter()
        try:
            if len(batch) == 1:
                outputs = [self.policy.predict(batch[0].obs)]
            else:
                outputs = list(self.policy.predict_batch([j.obs for j in batch]))
            if len(outputs) != len(batch):
                raise ModelError(f"predict_batch returned {len(outputs)} chunks for "
                                 f"{len(batch)} observations")
            results: list[Any] = [check_actions(o, self.metadata) for o in outputs]
        except Exception as e:  # noqa: BLE001 (any policy failure goes to each caller as a 500)
            err = e if isinstance(e, ModelError) else ModelError(f"{type(e).__name__}: {e}")
            if err is not e:
                err.__cause__ = e
            results = [err] * len(batch)
        elapsed = time.perf_counter() - start
        if self.on_batch is not None:
            self.on_batch(len(batch), elapsed)
        for job, out in zip(batch, results):
            if not isinstance(out, Exception):
                out = InferenceResult(out, (start - job.submitted) * 1e3, elapsed * 1e3, len(batch))
            self._deliver(job, out)

    @staticmethod
    def _deliver(job: _Job, out: InferenceResult | Exception) -> None:
        def resolve() -> None:
            if job.future.done():  # the caller went away (client disconnected)
                return
            if isinstance(out, Exception):
                job.future.set_exception(out)
            else:
                job.future.set_result(out)

        try:
            job.loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # the event loop is already closed (shutdown)
            pass
