"""``/v1/stream``: a persistent websocket session, wire-compatible with openpi's policy protocol.

On connect the server sends one binary frame: the metadata (msgpack). Then each binary frame in
is an observation dict (msgpack, arrays as raw bytes + dtype + shape) and each binary frame out is
``{"actions": float32 (chunk, dim), "server_timing": {...}, "request_id": str}``. A refused or
failed request is answered with a text frame (JSON ``{status, detail, request_id}``) and the
session stays open — openpi's client raises that text as its error. Credentials are checked at the
handshake (HTTP 401/403 before the upgrade). Also served at ``/``, where openpi's
``WebsocketClientPolicy(host, port)`` connects.
"""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from stare_robot.server import codec
from stare_robot.server.deps import check_token
from stare_robot.server.errors import REQUEST_ID_HEADER, ApiError, new_request_id
from stare_robot.server.routes.act import infer, response_payload
from stare_robot.server.state import ServerState

from stare_robot import wire

router = APIRouter()
ROUTE = "/v1/stream"


async def _refuse_handshake(ws: WebSocket, err: ApiError) -> None:
    body = err.body()
    await ws.send_denial_response(JSONResponse(
        body, status_code=err.status,
        headers={REQUEST_ID_HEADER: body["request_id"], **err.headers},
    ))


@router.websocket(ROUTE)
@router.websocket("/")  # openpi's client connects to ws://host:port with no path
async def stream(ws: WebSocket) -> None:
    state: ServerState = ws.app.state.stare
    try:
        check_token(ws.headers, state.settings)
        meta, worker = state.require_ready()
    except ApiError as err:
        state.metrics.record_request(ROUTE, err.status, 0.0)
        await _refuse_handshake(ws, err)
        return
    await ws.accept()
    state.peers.stream_opened()
    try:
        await ws.send_bytes(wire.packb(state.metadata_dict()))
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            received = time.perf_counter()
            request_id = new_request_id()
            status = 200
            try:
                frame = message.get("bytes")
                if frame is None:
                    raise ApiError(400, "expected binary frames of msgpack, got a text frame")
                if len(frame) > state.settings.max_body_bytes:
                    raise ApiError(413, f"frame of {len(frame)} bytes exceeds the limit of "
                                        f"{state.settings.max_body_bytes} bytes")
                obs = codec.decode_stream_frame(frame, meta)
                result = await infer(worker, obs, request_id)
                await ws.send_bytes(wire.packb(response_payload(request_id, result, received)))
            except ApiError as err:
                status = err.status
                err.request_id = err.request_id or request_id
                await ws.send_text(json.dumps(err.body()))
            state.metrics.record_request(ROUTE, status, time.perf_counter() - received)
    except WebSocketDisconnect:
        pass
    finally:
        state.peers.stream_closed()
