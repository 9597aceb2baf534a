"""Unchanged at inference: every transport returns exactly the in-process ``predict`` output."""

from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from server_fakes import CAMERA, MixingPolicy, make_metadata, make_observation
from stare_robot.server import ServerSettings, create_app
from stare_robot.server.runner import BackgroundServer

from stare_robot import keys, wire
from stare_robot.client import PolicyClient

pytest_plugins = ["server_fixtures"]  # serve, shared_server


def png_b64(img: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def json_numpy(arr: np.ndarray) -> dict:
    return {"__numpy__": base64.b64encode(arr.tobytes()).decode(), "dtype": arr.dtype.str,
            "shape": list(arr.shape)}


def json_body(obs: dict, image_as: str) -> dict:
    img = obs[CAMERA]
    image = {"lists": img.tolist(), "png": png_b64(img), "json-numpy": json_numpy(img)}[image_as]
    return {keys.WIRE_OBSERVATION: {CAMERA: image, keys.OBS_STATE: obs[keys.OBS_STATE].tolist(),
                                    keys.INSTRUCTION: obs[keys.INSTRUCTION]}}


def test_every_transport_equals_in_process_predict(shared_server):
    policy = MixingPolicy()  # same seed as the served one: same weights
    rng = np.random.default_rng(1)
    observations = [make_observation(rng, instruction=f"task {i}") for i in range(3)]
    with httpx.Client(base_url=shared_server.url) as http, \
            PolicyClient(shared_server.url, transport="websocket") as ws:
        for obs in observations:
            want = policy.predict(obs)
            got = {}
            for image_as in ("lists", "png", "json-numpy"):
                r = http.post("/v1/act", json=json_body(obs, image_as))
                assert r.status_code == 200, r.text
                got[f"json/{image_as}"] = np.asarray(r.json()[keys.WIRE_ACTIONS], dtype=np.float32)
            r = http.post("/v1/act", content=wire.packb({keys.WIRE_OBSERVATION: obs}),
                          headers={"content-type": "application/msgpack"})
            assert r.status_code == 200 and r.headers["content-type"] == "application/msgpack"
            got["msgpack"] = wire.unpackb(r.content)[keys.WIRE_ACTIONS]
            got["websocket"] = ws.predict(obs)
            for name, actions in got.items():
                assert actions.dtype == np.float32 and actions.shape == want.shape, name
                assert np.array_equal(actions, want), f"{name} differs from in-process predict"
        # different observations really give different answers (the check above is not vacuous)
        assert not np.array_equal(policy.predict(observations[0]), policy.predict(observations[1]))


def test_responses_carry_timings_and_request_ids(shared_server):
    obs = make_observation(np.random.default_rng(2))
    with httpx.Client(base_url=shared_server.url) as http:
        a = http.post("/v1/act", json=json_body(obs, "png")).json()
        b = http.post("/v1/act", json={**json_body(obs, "png"), keys.WIRE_REQUEST_ID: "robot-7.42"})
    assert a[keys.WIRE_REQUEST_ID] != "robot-7.42" and len(a[keys.WIRE_REQUEST_ID]) >= 16
    assert b.json()[keys.WIRE_REQUEST_ID] == "robot-7.42" == b.headers["x-request-id"]
    timing = a[keys.WIRE_TIMING]
    assert timing[keys.TIMING_BATCH_SIZE] == 1
    assert 0 <= timing[keys.TIMING_QUEUE_MS] <= timing[keys.TIMING_TOTAL_MS]
    assert 0 < timing[keys.TIMING_INFERENCE_MS] <= timing[keys.TIMING_TOTAL_MS]


def test_metadata_describes_the_policy(shared_server):
    meta = httpx.get(f"{shared_server.url}/v1/metadata").json()
    want = make_metadata()
    assert meta["name"] == want.name and meta["action_dim"] == 7 and meta["chunk_size"] == 4
    assert meta["action_space"] == keys.ACTION_SPACE_EE_DELTA and meta["control_rate_hz"] == 10.0
    assert meta["cameras"] == {CAMERA: {"shape": [32, 24, 3], "dtype": "uint8"}}
    assert meta["state_dim"] == 8 and meta["instruction_required"] is True
    assert meta["extra"]["normalization"] == {"state": "mean_std", "action": "min_max"}


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """``GET /metrics`` parsed by prometheus_client's own parser: sample name -> labels -> value."""
    r = httpx.get(f"{url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_health_readiness_and_metrics(shared_server):
    assert httpx.get(f"{shared_server.url}/healthz").json() == {"status": "ok", "detail": None}
    assert httpx.get(f"{shared_server.url}/readyz").status_code == 200
    refused = (("route", "/v1/act"), ("status", "422"))
    before = scrape(shared_server.url)
    httpx.post(f"{shared_server.url}/v1/act", json={"observation": {}})  # one 422
    obs = make_observation(np.random.default_rng(1))
    ok = httpx.post(f"{shared_server.url}/v1/act", headers={"content-type": "application/msgpack"},
                    content=wire.packb({keys.WIRE_OBSERVATION: obs}))
    assert ok.status_code == 200
    httpx.get(f"{shared_server.url}/no/such/path")  # counted as route "other", not a new series
    after = scrape(shared_server.url)

    requests = after["stare_requests_total"]
    assert requests[refused] == before.get("stare_requests_total", {}).get(refused, 0) + 1
    assert requests[(("route", "/v1/act"), ("status", "200"))] >= 1
    assert (("route", "other"), ("status", "404")) in requests
    assert not any(dict(labels)["route"] == "/no/such/path" for labels in requests)
    # histograms: cumulative buckets ending in +Inf == count; a policy call of batch size 1
    act = (("route", "/v1/act"),)
    assert after["stare_request_seconds_count"][act] >= 2
    assert after["stare_request_seconds_bucket"][(("le", "+Inf"), ("route", "/v1/act"))] == \
        after["stare_request_seconds_count"][act]
    assert after["stare_batch_size_bucket"][(("le", "1.0"),)] == after["stare_batch_size_count"][()]
    assert after["stare_inference_seconds_count"][()] >= 1


class GatedPolicy(MixingPolicy):
    """Loading blocks until the test opens the gate, to observe /readyz before readiness."""

    def __init__(self, gate) -> None:
        super().__init__()
        self.gate = gate

    @property
    def metadata(self):
        self.gate.wait(10)
        return super().metadata


def test_readyz_fails_until_the_model_is_loaded_and_act_says_so():
    gate = threading.Event()
    app = create_app(ServerSettings(port=0), policy=GatedPolicy(gate))
    srv = BackgroundServer(app).start(wait_ready=False)
    try:
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        r = httpx.get(f"{srv.url}/readyz")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        obs = make_observation(np.random.default_rng(3))
        r = httpx.post(f"{srv.url}/v1/act", json=json_body(obs, "png"))
        assert r.status_code == 503 and "loading" in r.json()["detail"]
        gate.set()
        srv.wait_ready(10)
        r = httpx.post(f"{srv.url}/v1/act", json=json_body(obs, "png"))
        assert r.status_code == 200
    finally:
        gate.set()
        srv.stop()


class BrokenCheckpointLoader:
    def __call__(self, path, device):
        raise FileNotFoundError(f"{path} has no config.json")


def test_a_failed_load_is_reported_by_readyz(tmp_path):
    app = create_app(ServerSettings(port=0, ckpt=tmp_path), loader=BrokenCheckpointLoader())
    with BackgroundServer(app).start(wait_ready=False) as srv:
        deadline = time.monotonic() + 10
        while (r := httpx.get(f"{srv.url}/readyz")).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert r.status_code == 503 and "no config.json" in r.json()["detail"]
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
