"""What one running server holds: the policy, its inference worker, readiness, metrics, peers.

Loading happens once, on a background thread started with the app, so ``/healthz`` answers at
once while ``/readyz`` and ``/v1/*`` wait (503) until the checkpoint is loaded and warmed up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stare_robot.server.errors import ApiError
from stare_robot.server.metrics import Metrics
from stare_robot.server.settings import ServerSettings
from stare_robot.server.validation import warmup_observation
from stare_robot.server.worker import InferenceWorker, PeerTracker

from stare_robot import __version__, keys
from stare_robot.policies.base import Policy, PolicyMetadata

logger = logging.getLogger("stare_robot.server")

Loader = Callable[..., Policy]  # loader(ckpt_path, device=...) -> Policy
ROUTES = ["/healthz", "/readyz", "/metrics", "/v1/metadata", "/v1/act", "/v1/stream"]


def default_loader(path: Path, device: str, torch_threads: int = 1) -> Policy:
    """``stare_robot.policies.load_policy``, imported only when a checkpoint is actually served.

    Sets torch's intra-op thread count first: results of a reduction depend on it in the last bits,
    so the server uses the same count as in-process evaluation."""
    import torch

    from stare_robot.policies import load_policy

    torch.set_num_threads(torch_threads)
    return load_policy(path, device=device)


class ServerState:
    def __init__(self, settings: ServerSettings, policy: Policy | None = None,
                 loader: Loader | None = None) -> None:
        if policy is None and settings.ckpt is None:
            raise ValueError("ServerSettings.ckpt is required unless a policy object is passed")
        self.settings = settings
        self.policy = policy
        self.loader = loader or default_loader
        self.metadata: PolicyMetadata | None = None
        self.worker: InferenceWorker | None = None
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.metrics = Metrics(ROUTES)
        self.peers = PeerTracker(settings.client_window_s)
        self._loader_thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> None:
        self._loader_thread = threading.Thread(target=self._load, name="stare-load", daemon=True)
        self._loader_thread.start()

    def stop(self) -> None:
        if self._loader_thread is not None:
            self._loader_thread.join(timeout=60)
        if self.worker is not None:
            self.worker.stop()
        self.ready.clear()

    def _load(self) -> None:
        start = time.perf_counter()
        try:
            if self.policy is None:
                logger.info("loading checkpoint %s on %s", self.settings.ckpt, self.settings.device)
                if self.loader is default_loader:
                    self.policy = default_loader(self.settings.ckpt, self.settings.device,
                                                 self.settings.torch_threads)
                else:
                    self.policy = self.loader(self.settings.ckpt, device=self.settings.device)
            meta = self.policy.metadata
            for _ in range(self.settings.warmup_steps):
                self.policy.predict(warmup_observation(meta))
            self.metadata = meta
            self.worker = InferenceWorker(
                self.policy, meta,
                max_batch_size=self.settings.max_batch_size,
                max_wait_ms=self.settings.batch_wait_ms,
                connected_clients=self.peers.count,
                on_batch=self.metrics.record_batch,
            )
            self.worker.start()
            self.ready.set()
            logger.info("policy %s %s ready in %.1f s", meta.name, meta.version,
                        time.perf_counter() - start)
        except Exception as e:
            self.load_error = f"{type(e).__name__}: {e}"
            logger.error("could not load/warm up the policy: %s", self.load_error, exc_info=e)

    # --- used by routes ---

    def require_ready(self, request_id: str | None = None) -> tuple[PolicyMetadata, InferenceWorker]:
        if not self.ready.is_set() or self.metadata is None or self.worker is None:
            why = f"model failed to load: {self.load_error}" if self.load_error else "model is loading"
            raise ApiError(503, f"not ready ({why}); poll GET /readyz", request_id,
                           headers={"Retry-After": "1"})
        return self.metadata, self.worker

    def metadata_dict(self) -> dict[str, Any]:
        meta, _ = self.require_ready()
        d = meta.to_dict()
        d["cameras"] = {k: v for k, v in d["inputs"].items()
                        if v["dtype"] == "uint8" and len(v["shape"]) == 3}
        state = meta.inputs.get(keys.OBS_STATE)
        d["state_dim"] = int(state.shape[0]) if state is not None and state.shape else None
        d["server"] = {
            "stare_robot_version": __version__,
            "max_batch_size": self.settings.max_batch_size,
            "batch_wait_ms": self.settings.batch_wait_ms,
            "max_body_bytes": self.settings.max_body_bytes,
            "auth_required": self.settings.auth_token is not None,
        }
        return d
