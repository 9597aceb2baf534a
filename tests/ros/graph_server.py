"""Test helper: a tiny real checkpoint (freshly initialised pi0, rgb mode) served by a real
``stare-robot serve`` subprocess on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def tiny_rgb_checkpoint(out: Path, image_size: int = 64) -> Path:
    """Fresh (untrained) tiny pi0 with random-data statistics: enough to drive the graph."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policies"))
    import torch
    from policy_helpers import build

    torch.manual_seed(0)
    policy = build("pi0", "rgb", image_size=image_size)
    policy.save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, ckpt: Path, log: Path, port: int | None = None):
        self.ckpt, self.port, self.log_path = ckpt, port or free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.start()

    def start(self) -> None:
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stare_robot.cli", "serve", "--ckpt", str(self.ckpt), "--port",
             str(self.port), "--log-level", "warning"], stdout=self._log, stderr=subprocess.STDOUT)

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
