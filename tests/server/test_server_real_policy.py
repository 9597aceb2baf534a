"""The real tiny pi0 checkpoint behind the server: every transport equals in-process ``predict``.

A checkpoint is saved with ``save_pretrained`` into a tmp dir and served the way ``stare-robot
serve`` does it (``ServerSettings(ckpt=...)`` -> ``load_policy``), on a real uvicorn.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from PIL import Image
from stare_robot.server import ServerSettings, create_app
from stare_robot.server.runner import BackgroundServer
from test_server_openpi import OPENPI_WARNING

from stare_robot import keys, wire
from stare_robot.client import PolicyClient

IMAGE_SIZE = 64
STATE_DIM = 8


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from stare_robot.policies import load_policy, make_config, make_policy
    from stare_robot.policies.normalize import NormalizationStats

    rng = np.random.default_rng(0)
    stats = NormalizationStats.from_arrays({
        keys.OBS_STATE: rng.standard_normal((64, STATE_DIM)).astype(np.float32),
        keys.ACTION: rng.standard_normal((64, keys.ACTION_DIM)).astype(np.float32),
    })
    config = make_config("pi0", image_size=IMAGE_SIZE, state_dim=STATE_DIM)
    path = make_policy(config, stats).save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny")
    return path, load_policy(path)


def observation(meta, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    obs = {k: (rng.integers(0, 256, s.shape, dtype=np.uint8) if s.dtype == "uint8"
               else rng.standard_normal(s.shape).astype(s.dtype)) for k, s in meta.inputs.items()}
    obs[keys.INSTRUCTION] = f"push the cube, try {seed}"
    return obs


def as_json(obs: dict) -> dict:
    out = {}
    for k, v in obs.items():
        if isinstance(v, np.ndarray) and v.dtype == np.uint8:
            buf = io.BytesIO()
            Image.fromarray(v).save(buf, format="PNG")
            out[k] = base64.b64encode(buf.getvalue()).decode()
        else:
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
    return {keys.WIRE_OBSERVATION: out}


@pytest.mark.filterwarnings(OPENPI_WARNING)
def test_served_checkpoint_equals_in_process_predict_on_every_transport(tiny_checkpoint):
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    path, policy = tiny_checkpoint
    app = create_app(ServerSettings(port=0, ckpt=path))
    with BackgroundServer(app).start(timeout=120) as srv, httpx.Client(base_url=srv.url) as http, \
            PolicyClient(srv.url, transport="websocket") as ws:
        meta = http.get("/v1/metadata").json()
        assert meta["name"] == policy.metadata.name and meta["state_dim"] == STATE_DIM
        openpi = WebsocketClientPolicy(host="127.0.0.1", port=srv.port)
        try:
            assert openpi.get_server_metadata()["inputs"] == meta["inputs"]
            answers = []
            for seed in range(2):
                obs = observation(policy.metadata, seed)
                want = policy.predict(obs)
                got = {
                    "json": np.asarray(http.post("/v1/act", json=as_json(obs)).json()["actions"],
                                       dtype=np.float32),
                    "msgpack": wire.unpackb(http.post(
                        "/v1/act", content=wire.packb({keys.WIRE_OBSERVATION: obs}),
                        headers={"content-type": "application/msgpack"}).content)["actions"],
                    "websocket": ws.predict(obs),
                    "openpi": openpi.infer(obs)["actions"],
                }
                for name, actions in got.items():
                    assert np.array_equal(actions, want), f"{name} != in-process predict"
                answers.append(want)
            assert not np.array_equal(answers[0], answers[1])
        finally:
            openpi._ws.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stare_robot_serve_command_serves_the_checkpoint(tiny_checkpoint):
    path, policy = tiny_checkpoint
    port = free_port()
    env = {**os.environ, "STARE_SERVER_AUTH_TOKEN": "cli-token"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stare_robot.cli", "serve", "--ckpt", str(path), "--port",
         str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "server never became ready"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert httpx.get(f"{url}/v1/metadata").status_code == 401  # token from the env var
        obs = observation(policy.metadata, 7)
        with PolicyClient(url, token="cli-token") as client:
            assert np.array_equal(client.predict(obs), policy.predict(obs))
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_serve_puts_the_checkpoint_on_the_requested_device(tiny_checkpoint, device):
    """``stare-robot serve --device D`` -> ServerSettings.device -> load_policy(device=D). "meta" is
    a non-CPU device torch has everywhere (no CUDA here); a meta model cannot run, so it is
    checked at the loader, the cpu one through a whole served app."""
    from stare_robot.server.cli import parse
    from stare_robot.server.state import default_loader

    path, policy = tiny_checkpoint
    settings = parse(["--ckpt", str(path), "--device", device, "--port", "0"])
    assert settings.device == device and settings.ckpt == path
    loaded = default_loader(settings.ckpt, settings.device, settings.torch_threads)
    tensors = [*loaded.parameters(), *loaded.buffers()]
    assert tensors and {t.device.type for t in tensors} == {device}
    if device == "cpu":
        app = create_app(settings)
        with BackgroundServer(app).start(timeout=120) as srv:
            served = app.state.stare.policy
            assert {p.device.type for p in served.parameters()} == {"cpu"}
            obs = observation(policy.metadata, 3)
            with PolicyClient(srv.url) as client:
                assert np.array_equal(client.predict(obs), policy.predict(obs))
