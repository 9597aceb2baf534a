"""``POST /v1/act``: one observation in (JSON or msgpack), one action chunk + timings out.

    curl -s localhost:8000/v1/act -H 'content-type: application/json' \\
      -d '{"observation": {"obs/base_camera/rgb": "<base64 png>", "obs/state": [0, ...],
           "instruction": "push the cube"}}'

The answer uses the request's format (msgpack in -> msgpack out, or ``Accept: application/msgpack``).
An ordinary FastAPI route: the body is read and decoded here (two formats, one size limit), so
FastAPI only checks the token (``AuthDep``) and documents the route.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from stare_robot.server import codec
from stare_robot.server.deps import AuthDep, StateDep
from stare_robot.server.errors import REQUEST_ID_HEADER, ApiError, check_request_id, new_request_id
from stare_robot.server.models import ActRequest, ActResponse, error_responses
from stare_robot.server.worker import InferenceResult, InferenceWorker, ModelError
from starlette.requests import ClientDisconnect

from stare_robot import keys, wire

logger = logging.getLogger("stare_robot.server")

ACT_ROUTE = "/v1/act"
ACCEPTED_TYPES = sorted({codec.JSON_CONTENT_TYPE, *wire.MSGPACK_CONTENT_TYPES})
CLIENT_CLOSED = 499  # nginx's status for "the client went away before the answer"

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


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"bad Content-Length header {declared!r}") from None
        if size > limit:
            raise ApiError(413, f"body of {size} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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


async def infer(worker: InferenceWorker, obs: dict[str, Any], request_id: str) -> InferenceResult:
    """Run the policy; its failure becomes a logged 500 carrying the request id."""
    try:
        return await worker.submit(obs)
    except ModelError as e:
        logger.error("request_id=%s policy error: %s", request_id, e, exc_info=e.__cause__ or e)
        raise ApiError(500, f"policy error ({e}); see server log for request_id {request_id}",
                       request_id) from None


router = APIRouter(tags=["policy"])


@router.post(ACT_ROUTE, response_model=ActResponse, openapi_extra=_OPENAPI_BODY,
             responses=error_responses(400, 401, 403, 413, 415, 422, 500, 503))
async def act(request: Request, state: StateDep, _auth: AuthDep) -> Response:
    """Predict one action chunk. Bodies: JSON (see schema) or msgpack (same envelope, raw arrays)."""
    received = time.perf_counter()
    request_id = new_request_id()
    try:
        meta, worker = state.require_ready(request_id)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        binary = content_type in wire.MSGPACK_CONTENT_TYPES
        if content_type != codec.JSON_CONTENT_TYPE and not binary:
            raise ApiError(415, f"unsupported Content-Type {content_type or '(none)'!r}; "
                                f"use one of {ACCEPTED_TYPES}")
        body = await read_body(request, state.settings.max_body_bytes)
        decode = codec.decode_msgpack_request if binary else codec.decode_json_request
        obs, client_id = decode(body, meta)
        request_id = check_request_id(client_id) if client_id is not None else request_id
        if request.client is not None:
            state.peers.seen(f"{request.client.host}:{request.client.port}")
        result = await infer(worker, obs, request_id)
    except ApiError as e:
        e.request_id = e.request_id or request_id
        raise
    except ClientDisconnect:
        return Response(status_code=CLIENT_CLOSED)  # nobody to answer
    payload = response_payload(request_id, result, received)
    headers = {REQUEST_ID_HEADER: request_id}
    if binary or wire.MSGPACK_CONTENT_TYPE in request.headers.get("accept", ""):
        return Response(wire.packb(payload), media_type=wire.MSGPACK_CONTENT_TYPE, headers=headers)
    return Response(codec.encode_json(payload), media_type=codec.JSON_CONTENT_TYPE,
                    headers=headers)
