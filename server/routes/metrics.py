"""``GET /metrics`` in Prometheus text format, and the ASGI middleware that counts HTTP requests."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from stare_robot.server.deps import StateDep
from stare_robot.server.metrics import CONTENT_TYPE, Metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(state: StateDep) -> Response:
    """Request counts by route and status, latency histogram, batch sizes."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


class MetricsMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware): records each HTTP response's status and time."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.record_request(scope["path"], status, time.perf_counter() - start)
