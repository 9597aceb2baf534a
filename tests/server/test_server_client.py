"""The light client: torch-free, a Policy, clean timeouts, reconnects after a server restart."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_fakes import CAMERA, MixingPolicy, make_observation

from stare_robot import keys
from stare_robot.client import (
    MetadataMismatch,
    PolicyAuthError,
    PolicyClient,
    PolicyObservationError,
    PolicyRequestError,
    PolicyServerTimeout,
    PolicyServerUnavailable,
)
from stare_robot.policies.base import ObservationError, Policy, check_observation

TRANSPORTS = ["http", "websocket"]

pytest_plugins = ["server_fixtures"]  # serve, shared_server


def test_importing_the_client_imports_neither_torch_nor_fastapi():
    code = ("import sys, stare_robot.client\n"
            "print(','.join(m for m in ('torch', 'fastapi', 'transformers', 'uvicorn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"stare_robot.client imported {out.stdout.strip()}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_client_is_a_policy_with_the_servers_metadata(shared_server, transport):
    with PolicyClient(shared_server.url, transport=transport,
                      expect={"action_dim": 7, "chunk_size": 4}) as client:
        assert isinstance(client, Policy)
        assert client.metadata == MixingPolicy().metadata
        obs = [make_observation(np.random.default_rng(i)) for i in range(2)]
        batch = client.predict_batch(obs)
        assert all(np.array_equal(b, MixingPolicy().predict(o)) for b, o in zip(batch, obs))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metadata_check_on_connect(shared_server, transport):
    with pytest.raises(MetadataMismatch, match="action_dim: expected 6, server has 7"):
        PolicyClient(shared_server.url, transport=transport, expect={"action_dim": 6})
    with pytest.raises(ValueError, match="unknown metadata field"):
        PolicyClient(shared_server.url, expect={"action_dims": 7}, connect=False)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_bad_observation_is_refused_before_sending_in_the_in_process_words(shared_server,
                                                                             transport):
    obs = make_observation(np.random.default_rng(0))
    obs[CAMERA] = obs[CAMERA][:, :, :2]
    with pytest.raises(ObservationError) as in_process:
        check_observation(obs, MixingPolicy().metadata)
    with PolicyClient(shared_server.url, transport=transport) as client:
        calls = shared_server.policy.calls
        with pytest.raises(PolicyRequestError, match=CAMERA) as err:
            client.predict(obs)
        assert isinstance(err.value, PolicyObservationError | ObservationError)
        assert err.value.status == 422 and err.value.detail == str(in_process.value)
        good = make_observation(np.random.default_rng(0))
        assert np.array_equal(client.predict(good), MixingPolicy().predict(good))
        assert shared_server.policy.calls == calls + 1  # the bad one never reached the server


def test_transport_names_default_and_alias(shared_server):
    with pytest.raises(ValueError, match="'ws' = 'websocket'"):
        PolicyClient(shared_server.url, transport="grpc", connect=False)
    assert PolicyClient(shared_server.url, connect=False).transport == "websocket"
    with PolicyClient(shared_server.url, transport="ws") as client:
        assert client.transport == "websocket" and client._ws is not None
    ws_url = shared_server.url.replace("http://", "ws://")
    with PolicyClient(ws_url, transport="http") as client:  # a ws:// url names the same server
        assert client.url == shared_server.url and client.metadata.name == "mixing-test-policy"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("token, status", [(None, "401"), ("wrong", "403")])
def test_auth_failure_raises_policy_auth_error_at_once_never_retried(serve, transport, token,
                                                                     status):
    srv = serve(MixingPolicy(), auth_token="right-token")
    route = "/v1/stream" if transport == "websocket" else "/v1/metadata"
    with pytest.raises(PolicyAuthError, match=f"HTTP {status}") as err:
        PolicyClient(srv.url, transport=transport, token=token, retries=3, backoff_s=0.01)
    assert err.value.status == int(status)
    samples = {(s.labels["route"], s.labels["status"]): s.value
               for f in text_string_to_metric_families(httpx.get(f"{srv.url}/metrics").text)
               for s in f.samples if s.name == "stare_requests_total"}
    assert samples[(route, status)] == 1  # one attempt only
    with PolicyClient(srv.url, transport=transport, token="right-token") as client:
        obs = make_observation(np.random.default_rng(2))
        assert np.array_equal(client.predict(obs), MixingPolicy().predict(obs))


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    sock.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_times_out_cleanly_against_a_server_that_does_not_answer(silent_server, transport):
    client = PolicyClient(silent_server, transport=transport, timeout=0.3, connect_timeout=0.3,
                          connect=False)
    with pytest.raises(PolicyServerTimeout, match="no (answer|handshake answer) within"):
        client.connect()
    client.close()


def test_unreachable_server_fails_after_bounded_retries():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PolicyServerUnavailable, match="after 3 attempts"):
        PolicyClient(f"http://127.0.0.1:{port}", retries=2, backoff_s=0.01)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reconnects_after_a_server_restart(serve, transport):
    first = serve(MixingPolicy())
    port = first.port
    obs = make_observation(np.random.default_rng(4))
    want = MixingPolicy().predict(obs)
    with PolicyClient(first.url, transport=transport, retries=2, backoff_s=0.02) as client:
        assert np.array_equal(client.predict(obs), want)
        first.stop()
        with pytest.raises(PolicyServerUnavailable):
            client.predict(obs)
        second = serve(MixingPolicy(), port=port)
        assert second.port == port
        assert np.array_equal(client.predict(obs), want)
        assert client.infer(obs)[keys.WIRE_TIMING][keys.TIMING_BATCH_SIZE] == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_predict_ignores_extra_keys_like_an_in_process_policy(shared_server, transport):
    # a simulator's observation carries more than the policy reads; predict() must not fail on it
    obs = make_observation(np.random.default_rng(3))
    noisy = {**obs, keys.OBS_JOINT_POS: np.zeros(9, np.float32), "sim/obj_pose": np.zeros(7)}
    with PolicyClient(shared_server.url, transport=transport) as client:
        assert np.array_equal(client.predict(noisy), MixingPolicy().predict(obs))
        assert np.array_equal(client.infer(noisy)[keys.WIRE_ACTIONS], MixingPolicy().predict(obs))
        # a missing input is refused, naming it, as in-process
        del obs[CAMERA]
        with pytest.raises(PolicyRequestError, match=f"missing {CAMERA}"):
            client.predict(obs)


def test_http_transport_keeps_one_connection_and_drops_one_the_server_closed(serve):
    """One keep-alive connection for every request; one the server closed while idle (restart,
    keep-alive timeout) is noticed before sending, so it costs no retry (``retries=0`` here)."""
    first = serve(MixingPolicy())
    port = first.port
    obs = make_observation(np.random.default_rng(6))
    want = MixingPolicy().predict(obs)
    with PolicyClient(first.url, transport="http", retries=0) as client:
        for _ in range(5):
            assert np.array_equal(client.predict(obs), want)
        assert len(first.app.state.stare.peers._last_seen) == 1  # one client port seen
        first.stop()
        second = serve(MixingPolicy(), port=port)
        assert np.array_equal(client.predict(obs), want)
        assert len(second.app.state.stare.peers._last_seen) == 1
