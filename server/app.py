"""The app factory. Nothing is built at import time; each call makes an independent server.

    from stare_robot.server import ServerSettings, create_app
    app = create_app(ServerSettings(ckpt="runs/sft/checkpoint"))
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from stare_robot.server.errors import install_error_handlers
from stare_robot.server.routes import ROUTERS
from stare_robot.server.routes.metrics import MetricsMiddleware
from stare_robot.server.settings import ServerSettings
from stare_robot.server.state import Loader, ServerState

from stare_robot import __version__
from stare_robot.policies.base import Policy


def create_app(settings: ServerSettings | None = None, policy: Policy | None = None,
               loader: Loader | None = None) -> FastAPI:
    """A FastAPI app serving ``policy`` (if given) or the checkpoint ``settings.ckpt``.

    ``loader(path, device=...) -> Policy`` defaults to ``stare_robot.policies.load_policy``. The
    policy is loaded and warmed up once, in the background, when the app starts (lifespan);
    ``/readyz`` passes after that.
    """
    settings = settings or ServerSettings()
    state = ServerState(settings, policy=policy, loader=loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(
        title="stare-robot policy server",
        version=__version__,
        description="Serves one VLA policy checkpoint: action chunks over HTTP (JSON or msgpack) "
                    "and an openpi-compatible websocket.",
        lifespan=lifespan,
    )
    app.state.stare = state
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    for router in ROUTERS:
        app.include_router(router)
    return app
