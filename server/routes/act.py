"""``POST /v1/act``: one observation in (JSON or msgpack), one action chunk + timings out.

    curl -s localhost:8000/v1/act -H 'content-type: application/json' \\
      -d '{"observation": {"obs/base_camera/rgb": "<base64 png>", "obs/state": [0, ...],
           "instruction": "push the cube"}}'

The answer uses the request's format (msgpack in -> msgpack out, or ``Accept: application/msgpack``).

Two entries, one implementation (:func:`answer_act`): :class:`ActFastPath`, a pure-ASGI front
that ``create_app`` puts ahead of FastAPI's routing (robots call this route at their control
rate), and the routed endpoint, which documents the route in OpenAPI and answers wherever the
front does not see the request (an app mounted under a prefix).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from stare_robot.server import codec
from stare_robot.server.deps import check_token
from stare_robot.server.errors import (
    REQUEST_ID_HEADER,
    ApiError,
    check_request_id,
    error_body,
    new_request_id,
)
from stare_robot.server.models import ActRequest, ActResponse, error_responses
from stare_robot.server.state import ServerState
from stare_robot.server.worker import InferenceResult, ModelError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from stare_robot import keys, wire

logger = logging.getLogger("stare_robot.server")

ACT_ROUTE = "/v1/act"
ACCEPTED_TYPES = sorted({codec.JSON_CONTENT_TYPE, *wire.MSGPACK_CONTENT_TYPES})

_OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            codec.JSON_CONTENT_TYPE: {"schema": ActRequest.model_json_schema()},
            wire.MSGPACK_CONTENT_TYPE: {
                "schema": {"type": "string", "format": "binary",
                           "description": "msgpack of the same envelope; arrays as "
                                          "{__ndarray__, data, dtype, shape} (openpi)"}
            },
        },
    }
}


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int,
                    request_id: str) -> bytes:
    """The request body, refusing (413) as soon as it is known to exceed ``limit`` bytes.

    Reads the ASGI messages directly; a body that arrives in one message, as a robot's usually
    does, is not copied."""
    declared = headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"bad Content-Length header {declared!r}", request_id) from None
        if size > limit:
            raise ApiError(413, f"body of {size} bytes exceeds the limit of {limit} bytes",
                           request_id)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body exceeds the limit of {limit} bytes", request_id)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def response_payload(request_id: str, result: InferenceResult, received: float) -> dict[str, Any]:
    return {
        keys.WIRE_REQUEST_ID: request_id,
        keys.WIRE_ACTIONS: result.actions,
        keys.WIRE_TIMING: {
            keys.TIMING_QUEUE_MS: result.queue_ms,
            keys.TIMING_INFERENCE_MS: result.inference_ms,
            keys.TIMING_TOTAL_MS: (time.perf_counter() - received) * 1e3,
            keys.TIMING_BATCH_SIZE: result.batch_size,
        },
    }


async def infer(worker, obs: dict[str, Any], request_id: str) -> InferenceResult:
    """Run the policy; its failure becomes a logged 500 carrying the request id."""
    try:
        return await worker.submit(obs)
    except ModelError as e:
        logger.error("request_id=%s policy error: %s", request_id, e, exc_info=e.__cause__ or e)
        raise ApiError(500, f"policy error ({e}); see server log for request_id {request_id}",
                       request_id) from None


@dataclass(frozen=True)
class Answer:
    """A finished response: what both entries below send."""

    status: int
    body: bytes
    media_type: str
    request_id: str
    headers: Mapping[str, str] = field(default_factory=dict)


async def answer_act(state: ServerState, headers: Mapping[str, str], receive: Receive,
                     client: tuple[str, int] | None) -> Answer:
    """One ``POST /v1/act``, start to finish; a refusal comes back as its error answer.

    ``headers`` maps lower-case names to values. An error inside the server or the policy that is
    not an :class:`ApiError` propagates (the app's handler makes it a logged 500)."""
    received = time.perf_counter()
    request_id = new_request_id()
    binary = False
    try:
        check_token(headers, state.settings)
        meta, worker = state.require_ready(request_id)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != codec.JSON_CONTENT_TYPE and content_type not in wire.MSGPACK_CONTENT_TYPES:
            raise ApiError(415, f"unsupported Content-Type {content_type or '(none)'!r}; "
                                f"use one of {ACCEPTED_TYPES}", request_id)
        body = await read_body(receive, headers, state.settings.max_body_bytes, request_id)
        binary = content_type in wire.MSGPACK_CONTENT_TYPES
        decode = codec.decode_msgpack_request if binary else codec.decode_json_request
        obs, client_id = decode(body, meta)
        request_id = check_request_id(client_id) if client_id is not None else request_id
        if client is not None:
            state.peers.seen(f"{client[0]}:{client[1]}")
        result = await infer(worker, obs, request_id)
    except ApiError as e:
        e.request_id = e.request_id or request_id
        return Answer(e.status, error_body(e), codec.JSON_CONTENT_TYPE, e.request_id, e.headers)
    payload = response_payload(request_id, result, received)
    if binary or wire.MSGPACK_CONTENT_TYPE in headers.get("accept", ""):
        return Answer(200, wire.packb(payload), wire.MSGPACK_CONTENT_TYPE, request_id)
    return Answer(200, codec.encode_json(payload), codec.JSON_CONTENT_TYPE, request_id)


class PlainEndpointRoute(APIRoute):
    """Documented in OpenAPI like any route, but called as a plain Starlette endpoint.

    ``endpoint(request) -> Response`` runs with no dependency solving, body parsing or response
    serialisation: the endpoint does its own, and FastAPI's per-request machinery costs more than a
    whole no-op inference. (Overriding ``get_route_handler`` is FastAPI's hook for this.)"""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        return self.endpoint


router = APIRouter(tags=["policy"], route_class=PlainEndpointRoute)


@router.post(ACT_ROUTE, response_model=ActResponse, openapi_extra=_OPENAPI_BODY,
             responses=error_responses(400, 401, 403, 413, 415, 422, 500, 503))
async def act(request: Request) -> Response:
    """Predict one action chunk. Bodies: JSON (see schema) or msgpack (same envelope, raw arrays)."""
    # served by ActFastPath in the app; this routed entry answers when the app is mounted or
    # wrapped so that the fast path does not see the request
    client = (request.client.host, request.client.port) if request.client else None
    answer = await answer_act(request.app.state.stare, request.headers, request.receive, client)
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type,
                    headers={REQUEST_ID_HEADER: answer.request_id, **answer.headers})


class ActFastPath:
    """Pure ASGI middleware: ``POST /v1/act`` goes straight to :func:`answer_act`.

    Routing through FastAPI, its Request/Response objects and exception middleware cost about as
    much as the rest of a no-op request (``benchmarks/server_latency.py``: the bare-FastAPI
    floor); robots call this one route at their control rate. Everything else, and any error
    this path does not answer itself, goes through the app as usual."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != ACT_ROUTE or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # the first of repeated headers, as Starlette's get
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        try:
            answer = await answer_act(self.state, headers, receive, scope.get("client"))
        except ClientDisconnect:
            return
        response_headers = [
            (b"content-type", answer.media_type.encode()),
            (b"content-length", str(len(answer.body)).encode()),
            (REQUEST_ID_HEADER.lower().encode(), answer.request_id.encode()),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()),
        ]
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": response_headers})
        await send({"type": "http.response.body", "body": answer.body})
