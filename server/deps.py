"""Request dependencies as ``Annotated`` aliases: the server state and the optional token check."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request
from stare_robot.server.errors import ApiError
from stare_robot.server.settings import ServerSettings
from stare_robot.server.state import ServerState

# accepted credential forms: "Authorization: Bearer T", openpi's "Authorization: Api-Key T",
# or a bare "Api-Key: T" header
AUTH_SCHEMES = ("bearer", "api-key")


def presented_token(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() in AUTH_SCHEMES and token.strip():
            return token.strip()
        return ""  # present but malformed: treated as a wrong token
    api_key = headers.get("api-key")
    return api_key.strip() if api_key is not None else None


def check_token(headers: Mapping[str, str], settings: ServerSettings) -> None:
    """401 without credentials, 403 with wrong ones; nothing to do when no token is configured."""
    if settings.auth_token is None:
        return
    token = presented_token(headers)
    if token is None:
        raise ApiError(401, "missing credentials: send 'Authorization: Bearer <token>' "
                            "(or 'Authorization: Api-Key <token>')",
                       headers={"WWW-Authenticate": "Bearer"})
    expected = settings.auth_token.get_secret_value().encode()
    if not hmac.compare_digest(token.encode(), expected):
        raise ApiError(403, "invalid token")


async def get_state(request: Request) -> ServerState:
    # async on purpose: FastAPI runs a plain-def dependency on a thread pool (a hop per request)
    return request.app.state.stare


async def require_auth(request: Request) -> None:
    check_token(request.headers, request.app.state.stare.settings)


StateDep = Annotated[ServerState, Depends(get_state)]
AuthDep = Annotated[None, Depends(require_auth)]
