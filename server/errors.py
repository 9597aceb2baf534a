"""One error type for every refusal, and the handlers that turn any error into a JSON answer.

Every error body is ``{"status": int, "detail": str, "request_id": str}`` and carries the request id
in the ``X-Request-ID`` header too. A client's mistake is always a 4xx naming what was wrong; only a
failure inside the server or the policy is a 500 (logged with its traceback).
"""

from __future__ import annotations

import json
import logging
import re
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from stare_robot import keys

logger = logging.getLogger("stare_robot.server")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


def check_request_id(value: object) -> str:
    """A client-chosen request id, or a fresh one when ``value`` is None."""
    if value is None:
        return new_request_id()
    if not isinstance(value, str) or not _REQUEST_ID_RE.match(value):
        raise ApiError(
            422, f"{keys.WIRE_REQUEST_ID} must be 1-64 characters of [A-Za-z0-9._:-], got {value!r}"
        )
    return value


class ApiError(Exception):
    """A refusal with an HTTP status and a message for the client."""

    def __init__(self, status: int, detail: str, request_id: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.request_id = request_id
        self.headers = headers or {}

    def body(self) -> dict:
        return {"status": self.status, "detail": self.detail,
                keys.WIRE_REQUEST_ID: self.request_id or new_request_id()}


def error_body(err: ApiError) -> bytes:
    """The JSON bytes of ``err``'s answer; fills in its request id if it had none."""
    err.request_id = err.request_id or new_request_id()
    return json.dumps(err.body()).encode()


def error_response(err: ApiError) -> Response:
    body = error_body(err)
    headers = {REQUEST_ID_HEADER: err.request_id, **err.headers}
    return Response(body, status_code=err.status, headers=headers, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> Response:
        return error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> Response:
        # 404 / 405 from routing, in our error format
        return error_response(ApiError(err.status_code, str(err.detail), headers=err.headers))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> Response:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors()]
        return error_response(ApiError(422, "; ".join(parts) or "invalid request"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> Response:
        rid = new_request_id()
        logger.error("request_id=%s unexpected server error on %s", rid, request.url.path,
                     exc_info=err)
        return error_response(ApiError(500, "internal server error", rid))
