"""Fixtures for the server tests: a real uvicorn on a free 127.0.0.1 port, stopped afterwards.

Not a conftest.py: a second module named ``conftest`` would shadow tests/conftest.py for the
``from conftest import ...`` lines of other tests. Test modules import the fixtures they use.
"""

from __future__ import annotations

import pytest
from server_fakes import MixingPolicy
from stare_robot.server import ServerSettings, create_app
from stare_robot.server.runner import BackgroundServer


@pytest.fixture
def serve():
    """``serve(policy, **settings) -> BackgroundServer`` already ready; all stopped at teardown."""
    started: list[BackgroundServer] = []

    def start(policy=None, port: int = 0, **settings) -> BackgroundServer:
        app = create_app(ServerSettings(port=port, **settings), policy=policy or MixingPolicy())
        srv = BackgroundServer(app, port=port).start(timeout=30)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def shared_server():
    """One MixingPolicy server (batching off, no token) shared by a module's read-only tests."""
    policy = MixingPolicy()
    app = create_app(ServerSettings(port=0), policy=policy)
    with BackgroundServer(app) as srv:
        srv.policy = policy
        yield srv
