"""Run the app under a real uvicorn: in the foreground (``stare-robot serve``) or on a thread.

The thread form is for tests, notebooks and evaluation loops that want a live server on
127.0.0.1 next to them::

    with BackgroundServer(create_app(settings, policy=my_policy)) as srv:
        PolicyClient(srv.url).predict(obs)
"""

from __future__ import annotations

import threading
import time
from typing import Self

import httpx
import uvicorn
from fastapi import FastAPI


def uvicorn_config(app: FastAPI, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    settings = app.state.stare.settings
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="on",
        ws_max_size=settings.max_body_bytes,  # websocket frames obey the same body limit
        ws_per_message_deflate=False,  # arrays barely compress; deflate only adds latency
    )


def serve_forever(app: FastAPI) -> None:
    settings = app.state.stare.settings
    uvicorn.Server(uvicorn_config(app, settings.host, settings.port, settings.log_level)).run()


class BackgroundServer:
    """uvicorn on a daemon thread; ``port=0`` picks a free port (read it back from ``.port``)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning") -> None:
        self.app = app
        self.host = host
        self._server = uvicorn.Server(uvicorn_config(app, host, port, log_level))
        self._thread: threading.Thread | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0, wait_ready: bool = True) -> Self:
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"uvicorn failed to start on {self.host}:{self.port}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"uvicorn did not start within {timeout} s")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        if wait_ready:
            self.wait_ready(max(1.0, deadline - time.monotonic()))
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll ``/readyz`` until it passes; raise with the server's reason if it never does."""
        deadline, detail = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            r = httpx.get(f"{self.url}/readyz", timeout=2.0)
            if r.status_code == 200:
                return
            detail = r.text
            if r.json().get("status") == "failed":
                break
            time.sleep(0.02)
        raise RuntimeError(f"server at {self.url} not ready: {detail}")

    def stop(self, timeout: float = 15.0) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
