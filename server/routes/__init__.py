"""One module per resource: health, metadata, act (HTTP), stream (websocket), metrics."""

from __future__ import annotations

from stare_robot.server.routes import act, health, metadata, metrics, stream

ROUTERS = [health.router, metadata.router, act.router, stream.router, metrics.router]
