"""FastAPI inference service hosting one policy checkpoint (installed as ``stare_robot.server``).

    stare-robot serve --ckpt runs/sft/checkpoint --host 127.0.0.1 --port 8000

Layout: ``settings`` (pydantic-settings), ``app.create_app`` (the factory; nothing is built at
import time), ``routes/`` (one module per resource), ``deps`` (Annotated dependencies), ``worker``
(dedicated inference thread + cross-robot micro-batching), ``validation`` / ``codec`` (what a
request may contain and how it is decoded; the rules themselves are :mod:`stare_robot.validation`),
``metrics`` (prometheus_client). The msgpack/numpy wire format shared with the client is
:mod:`stare_robot.wire` in the core library.

This package's ``__init__`` stays light on purpose: nothing heavy is imported until used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # lazy, so that importing the wire format does not import FastAPI
    if name == "create_app":
        from stare_robot.server.app import create_app

        return create_app
    if name == "ServerSettings":
        from stare_robot.server.settings import ServerSettings

        return ServerSettings
    raise AttributeError(f"module 'stare_robot.server' has no attribute {name!r}")
