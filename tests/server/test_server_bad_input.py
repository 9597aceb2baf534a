"""Bad input gets the right 4xx and a message naming the field; the server then still answers right.

Each case sends one bad request, checks status + message, then sends a good request in the same
test and checks its actions against in-process ``predict``.
"""

from __future__ import annotations

import base64
import json
import logging

import httpx
import msgpack
import numpy as np
import pytest
from server_fakes import (
    CAMERA,
    FAIL_INSTRUCTION,
    NAN_INSTRUCTION,
    FaultyPolicy,
    MixingPolicy,
    make_observation,
)
from stare_robot.server import ServerSettings, create_app
from stare_robot.server.runner import BackgroundServer
from test_server_act import json_body, png_b64
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from stare_robot import keys, wire

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 64 * 1024
MSGPACK = {"content-type": "application/msgpack", **AUTH}
REFERENCE = MixingPolicy()


@pytest.fixture(scope="module")
def guarded():
    app = create_app(ServerSettings(port=0, auth_token=TOKEN, max_body_bytes=LIMIT),
                     policy=FaultyPolicy())
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url) as http:
        srv.http = http
        yield srv


def good_obs(seed: int = 0) -> dict:
    return make_observation(np.random.default_rng(seed))


def assert_still_serving(srv) -> None:
    obs = good_obs(99)
    r = srv.http.post("/v1/act", content=wire.packb({keys.WIRE_OBSERVATION: obs}), headers=MSGPACK)
    assert r.status_code == 200, r.text
    assert np.array_equal(wire.unpackb(r.content)[keys.WIRE_ACTIONS], REFERENCE.predict(obs))


def msgpack_with(**changes) -> bytes:
    obs = good_obs()
    obs.update(changes)
    return wire.packb({keys.WIRE_OBSERVATION: {k: v for k, v in obs.items() if v is not None}})


def json_with(**changes) -> bytes:
    body = json_body(good_obs(), "png")
    for k, v in changes.items():
        if v is None:
            del body[keys.WIRE_OBSERVATION][k]
        else:
            body[keys.WIRE_OBSERVATION][k] = v
    return json.dumps(body).encode()


JSON = {"content-type": "application/json", **AUTH}
state = keys.OBS_STATE
nan_state = np.array([0, 1, np.nan, 3, 4, 5, 6, 7], dtype=np.float32)

# (case, body, headers, status, words that must appear in the message)
CASES = [
    ("missing camera", json_with(**{CAMERA: None}), JSON, 422, [CAMERA, "missing"]),
    ("missing instruction", json_with(instruction=None), JSON, 422, ["instruction", "missing"]),
    ("wrong image shape", msgpack_with(**{CAMERA: np.zeros((24, 32, 3), np.uint8)}), MSGPACK, 422,
     [CAMERA, "(32, 24, 3)", "(24, 32, 3)"]),
    ("wrong png size", json_with(**{CAMERA: png_b64(np.zeros((16, 16, 3), np.uint8))}), JSON, 422,
     [CAMERA, "shape"]),
    ("wrong image dtype", msgpack_with(**{CAMERA: np.zeros((32, 24, 3), np.float32)}), MSGPACK,
     422, [CAMERA, "uint8", "float32"]),
    ("wrong state dtype", msgpack_with(**{state: np.zeros(8, bool)}), MSGPACK, 422,
     [state, "float32", "bool"]),
    ("nan in state", msgpack_with(**{state: nan_state}), MSGPACK, 422, [state, "non-finite"]),
    ("inf in state (json)", json_with(**{state: [0, 1, 2, 3, 4, 5, 6, 1e999]}), JSON, 422,
     [state, "non-finite"]),
    ("wrong state length", json_with(**{state: [0.0] * 7}), JSON, 422, [state, "(8,)", "(7,)"]),
    ("ragged state", json_with(**{state: [[0.0], 1.0]}), JSON, 422, [state, "ragged"]),
    ("pixel out of range", json_with(**{CAMERA: np.full((32, 24, 3), 256).tolist()}), JSON, 422,
     [CAMERA, "[0, 255]"]),
    ("string for the state", json_with(**{state: "AAAA"}), JSON, 422, [state, "image inputs"]),
    ("instruction not a string", json_with(instruction=5), JSON, 422, ["instruction", "string"]),
    ("bad base64", json_with(**{CAMERA: "not*base64!"}), JSON, 422, [CAMERA, "base64"]),
    ("undecodable image", json_with(**{CAMERA: base64.b64encode(b"GIF89a-garbage").decode()}),
     JSON, 422, [CAMERA, "decode image"]),
    ("oversized body", b"\0" * (LIMIT + 1), MSGPACK, 413, ["exceeds", str(LIMIT)]),
    ("malformed msgpack", b"\x82\xa1a", MSGPACK, 400, ["msgpack"]),
    ("msgpack object dtype", msgpack.packb({keys.WIRE_OBSERVATION: {
        CAMERA: {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|O", b"shape": [1]}}}),
     MSGPACK, 400, ["dtype"]),
    ("invalid json", b'{"observation": ', JSON, 400, ["JSON"]),
    ("body not an object", b"[1, 2]", JSON, 422, ["observation"]),
    ("bad request id", json.dumps({**json.loads(json_with()), "request_id": "x" * 65}).encode(),
     JSON, 422, ["request_id"]),
    ("wrong content type", json_with(), {"content-type": "text/plain", **AUTH}, 415,
     ["Content-Type", "application/msgpack"]),
    ("missing token", json_with(), {"content-type": "application/json"}, 401, ["Bearer"]),
    ("wrong token", json_with(), {"content-type": "application/json",
                                  "Authorization": "Bearer nope"}, 403, ["token"]),
]


@pytest.mark.parametrize("case, body, headers, status, words", CASES, ids=[c[0] for c in CASES])
def test_bad_request_gets_a_precise_4xx_and_the_server_keeps_serving(guarded, case, body, headers,
                                                                     status, words):
    r = guarded.http.post("/v1/act", content=body, headers=headers)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["status"] == status and err["request_id"] == r.headers["x-request-id"]
    for word in words:
        assert word in err["detail"], f"{word!r} not in {err['detail']!r}"
    assert_still_serving(guarded)


def test_extra_fields_are_ignored_and_a_close_dtype_is_cast_like_in_process(guarded):
    """One rule set (stare_robot.validation): keys the policy does not read are dropped, and a
    float64 state is cast to the declared float32, exactly as ``Policy.predict`` accepts them."""
    obs = good_obs(7)
    noisy = {**obs, "obs/wrist/rgb": np.zeros(3, np.float32),
             state: obs[state].astype(np.float64)}
    r = guarded.http.post("/v1/act", content=wire.packb({keys.WIRE_OBSERVATION: noisy}),
                          headers=MSGPACK)
    assert r.status_code == 200, r.text
    assert np.array_equal(wire.unpackb(r.content)[keys.WIRE_ACTIONS], REFERENCE.predict(obs))
    r = guarded.http.post("/v1/act", content=json_with(**{"obs/wrist/rgb": [1]}), headers=JSON)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("headers", [{"Authorization": f"Api-Key {TOKEN}"}, {"Api-Key": TOKEN}])
def test_openpi_api_key_header_is_accepted(guarded, headers):
    assert guarded.http.get("/v1/metadata", headers=headers).status_code == 200
    assert guarded.http.get("/v1/metadata").status_code == 401
    assert guarded.http.get("/healthz").status_code == 200  # probes need no token


@pytest.mark.parametrize("instruction, reason", [(FAIL_INSTRUCTION, "RuntimeError"),
                                                 (NAN_INSTRUCTION, "non-finite")])
def test_model_error_is_a_500_with_request_id_and_a_logged_traceback(guarded, caplog, instruction,
                                                                    reason):
    obs = good_obs()
    obs[keys.INSTRUCTION] = instruction
    with caplog.at_level(logging.ERROR, logger="stare_robot.server"):
        r = guarded.http.post("/v1/act", content=wire.packb({keys.WIRE_OBSERVATION: obs}),
                              headers=MSGPACK)
    assert r.status_code == 500
    rid = r.json()["request_id"]
    assert rid == r.headers["x-request-id"] and rid in r.json()["detail"]
    assert reason in r.json()["detail"]
    logged = [rec for rec in caplog.records if rid in rec.getMessage()]
    assert logged and logged[0].exc_info is not None  # traceback kept for the operator
    assert_still_serving(guarded)


def ws_url(srv) -> str:
    return srv.url.replace("http://", "ws://") + "/v1/stream"


@pytest.mark.parametrize("headers, status", [({}, 401), ({"Authorization": "Bearer nope"}, 403)])
def test_websocket_handshake_checks_the_token(guarded, headers, status):
    with pytest.raises(InvalidStatus) as err, \
            connect(ws_url(guarded), additional_headers=headers, open_timeout=5):
        pass
    assert err.value.response.status_code == status
    assert_still_serving(guarded)


def test_websocket_bad_frames_get_error_text_and_the_session_goes_on(guarded):
    obs = good_obs(5)
    with connect(ws_url(guarded), additional_headers=AUTH, open_timeout=5) as ws:
        meta = wire.unpackb(ws.recv(timeout=5))
        assert meta["inputs"][CAMERA]["shape"] == [32, 24, 3]
        bad_frames = [
            (b"\xc1", 400, "msgpack"),
            ("a text frame", 400, "binary"),
            (wire.packb({**obs, state: np.zeros(3, np.float32)}), 422, state),
            (wire.packb({k: v for k, v in obs.items() if k != CAMERA}), 422, CAMERA),
            (wire.packb({**obs, keys.INSTRUCTION: FAIL_INSTRUCTION}), 500, "RuntimeError"),
        ]
        for frame, status, word in bad_frames:
            ws.send(frame)
            reply = ws.recv(timeout=5)
            assert isinstance(reply, str), "errors come back as text frames (openpi convention)"
            err = json.loads(reply)
            assert err["status"] == status and word in err["detail"], err
            ws.send(wire.packb(obs))
            good = wire.unpackb(ws.recv(timeout=5))
            assert np.array_equal(good[keys.WIRE_ACTIONS], REFERENCE.predict(obs))
