"""Test helpers: a tiny real checkpoint (freshly initialised pi0, rgb mode) served by a real
``stare-robot serve`` subprocess on a free loopback port; and :class:`NanServer`, a tiny HTTP
policy server that answers NaN chunks on demand.

The real server refuses to send a non-finite chunk (HTTP 500), so the policy client's own
bad-chunk check can only be exercised by a server that misbehaves on purpose. NanServer speaks the
same wire (``GET /v1/metadata`` JSON, ``POST /v1/act`` msgpack) from a stdlib HTTP server thread.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np

from stare_robot import keys, wire
from stare_robot.policies.base import ArraySpec, PolicyMetadata


def tiny_rgb_checkpoint(out: Path, image_size: int = 64, **build_kwargs) -> Path:
    """Fresh (untrained) tiny pi0 with random-data statistics: enough to drive the graph.
    ``build_kwargs`` go to ``policy_helpers.build`` (e.g. ``state_dim``, ``cameras``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policies"))
    import torch
    from policy_helpers import build

    torch.manual_seed(0)
    policy = build("pi0", "rgb", image_size=image_size, **build_kwargs)
    policy.save_pretrained(out)
    return out


PUSHCUBE_ENV_STATE_DIM = 35  # ManiSkill's flat PushCube-v1 state: what sim_robot's env_state holds


def tiny_state_checkpoint(out: Path, env_state_dim: int = PUSHCUBE_ENV_STATE_DIM) -> Path:
    """Fresh tiny pi0 in state mode (what ``make demo`` trains): obs/state + obs/env_state."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policies"))
    import torch
    from policy_helpers import stats_for

    from stare_robot.policies import make_config, make_policy

    torch.manual_seed(0)
    config = make_config("pi0", obs_mode="state", env_state_dim=env_state_dim)
    make_policy(config, stats_for(config)).save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``stare-robot serve`` on a free loopback port; ``token``: its auth token (given in the
    environment, as the server's docs advise)."""

    def __init__(self, ckpt: Path, log: Path, port: int | None = None, token: str | None = None):
        self.ckpt, self.port, self.log_path = ckpt, port or free_port(), log
        self.token = token
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.start()

    def start(self) -> None:
        self._log = open(self.log_path, "a")  # noqa: SIM115 (the server writes it; closed by stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stare_robot.cli", "serve", "--ckpt", str(self.ckpt), "--port",
             str(self.port), "--log-level", "warning"], stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "STARE_SERVER_AUTH_TOKEN": self.token} if self.token else None)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "server never became ready"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()


GOOD_X = 0.01  # the good chunk's x delta: tells a policy step from a hold (zero motion)


def rgb_metadata(image_size: int = 64, chunk_size: int = 4) -> PolicyMetadata:
    return PolicyMetadata(
        name="nan-on-demand", version="1.0", action_space=keys.ACTION_SPACE_EE_DELTA,
        action_dim=keys.ACTION_DIM, chunk_size=chunk_size, control_rate_hz=5.0,
        inputs={keys.obs_rgb(keys.DEFAULT_CAMERA): ArraySpec((image_size, image_size, 3), "uint8"),
                keys.OBS_STATE: ArraySpec((18,), "float32")},
        instruction_required=False)


class NanServer:
    """``mode`` = "good" (x = GOOD_X, gripper open) or "nan" (NaN in the first step)."""

    def __init__(self, metadata: PolicyMetadata | None = None):
        self.metadata = metadata or rgb_metadata()
        self.mode = "good"
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/metadata":
                    self._send(json.dumps(server.metadata.to_dict()).encode(), "application/json")
                else:  # /healthz, /readyz
                    self._send(b'{"status": "ok"}', "application/json")

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests += 1
                self._send(wire.packb({keys.WIRE_ACTIONS: server.chunk()}), wire.MSGPACK_CONTENT_TYPE)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def chunk(self) -> np.ndarray:
        c = np.zeros((self.metadata.chunk_size, self.metadata.action_dim), np.float32)
        c[:, 0] = GOOD_X
        c[:, -1] = keys.GRIPPER_OPEN
        if self.mode == "nan":
            c[0, 0] = np.nan
        return c

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
