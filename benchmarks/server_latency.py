"""Latency and throughput of the policy server on 127.0.0.1, per transport, beside a peer server.

    .venv/bin/python benchmarks/server_latency.py                  # full run -> runs/bench/
    .venv/bin/python benchmarks/server_latency.py --quick          # fewer requests, a smoke run
    .venv/bin/python benchmarks/server_latency.py --out benchmarks/results/server_latency.json

One request = one 224x224x3 uint8 image + 8-D float32 state + an instruction. Each server runs in
its own process (so its CPU time per request can be read from /proc); clients are this process
(1 client) or 4 client processes. Policies: ``noop`` (returns a constant chunk: isolates the
server), ``sleep20`` (a simulated 20 ms model, one sleep per forward pass or batch) and ``tiny``
(the real tiny pi0 checkpoint, saved and served through ``load_policy``).

The peer, in the same run: an **openpi-style server**, the ``websockets`` library's asyncio server
serving the same no-op policy with msgpack frames (metadata first, then one observation in, one
answer out: the protocol of openpi's ``websocket_policy_server``; written here, not copied). It is
measured with the very client our websocket row uses (``PolicyClient(transport="websocket")``), so
the ratio is the server's. Targets: our websocket p50 within 1.5x of the peer's; our HTTP msgpack
(``PolicyClient(transport="http")``, standard-library ``http.client``) within 2x of our websocket.

Server overhead = round-trip - model time, where model time is the server-reported
``inference_ms`` of that very request. Baselines in the same run: the same request as nested JSON
lists, and base64-numpy in JSON (json-numpy, the wire format of OpenVLA's deploy script), posted
with httpx as a typical client would. Floors (HTTP ones posted with ``http.client`` like our HTTP
transport): a raw TCP exchange of the same bytes, a minimal ASGI app under the same uvicorn (HTTP
and websocket), and a bare FastAPI app with one ordinary route answering fixed bytes (the
framework's share).

The machine may be shared: the no-op section runs ``--repeats`` times (interleaving all variants
in each), the JSON keeps every run's numbers, and the headline is the best run's p50s with the
spread across runs beside it. Ratios are taken within each run (load cancels). Load averages and
``uptime`` are recorded. Writes ``--out`` (default under runs/bench/, never the committed
benchmarks/results/ unless told) and a .png beside it.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from fastapi import FastAPI, Request  # module level: the floor's annotations must resolve
from fastapi.responses import Response

from stare_robot import keys, wire
from stare_robot.client import PolicyClient

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "runs" / "bench" / "server_latency.json"
DEFAULT_OUT_QUICK = ROOT / "runs" / "bench" / "server_latency_quick.json"
IMAGE = (224, 224, 3)
STATE_DIM = 8
CAMERA = keys.obs_rgb(keys.DEFAULT_CAMERA)


# --- the server side (runs in a subprocess: `--serve KIND`) ---

def _bench_metadata():
    from stare_robot.policies.base import ArraySpec, PolicyMetadata

    return PolicyMetadata(
        name="bench", version="0", action_space=keys.ACTION_SPACE_EE_DELTA,
        action_dim=keys.ACTION_DIM, chunk_size=4, control_rate_hz=10.0,
        inputs={CAMERA: ArraySpec(IMAGE, "uint8"), keys.OBS_STATE: ArraySpec((STATE_DIM,), "float32")},
    )


def _make_policy(kind: str):
    from stare_robot.policies.base import Policy

    meta = _bench_metadata()
    chunk = np.zeros((meta.chunk_size, meta.action_dim), np.float32)

    class NoopPolicy(Policy):
        delay_s = 0.0

        @property
        def metadata(self):
            return meta

        def predict(self, obs):
            if self.delay_s:
                time.sleep(self.delay_s)
            return chunk.copy()

        def predict_batch(self, observations):
            if self.delay_s:
                time.sleep(self.delay_s)  # a batch costs one forward pass
            return [chunk.copy() for _ in observations]

    policy = NoopPolicy()
    policy.delay_s = {"noop": 0.0, "sleep20": 0.020}[kind]
    return policy


def _save_tiny_checkpoint(directory: Path) -> Path:
    from stare_robot.policies import make_config, make_policy
    from stare_robot.policies.normalize import NormalizationStats

    rng = np.random.default_rng(0)
    stats = NormalizationStats.from_arrays({
        keys.OBS_STATE: rng.standard_normal((64, STATE_DIM)).astype(np.float32),
        keys.ACTION: rng.standard_normal((64, keys.ACTION_DIM)).astype(np.float32),
    })
    config = make_config("pi0", image_size=IMAGE[0], state_dim=STATE_DIM)
    return make_policy(config, stats).save_pretrained(directory / "tiny")


FLOOR_REPLY = wire.packb({keys.WIRE_ACTIONS: np.zeros((4, keys.ACTION_DIM), np.float32)})


async def minimal_asgi(scope, receive, send) -> None:
    """The floor under the server: read the whole request, answer a fixed msgpack reply."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", wire.MSGPACK_CONTENT_TYPE.encode()),
                                (b"content-length", str(len(FLOOR_REPLY)).encode())]})
        await send({"type": "http.response.body", "body": FLOOR_REPLY})
    elif scope["type"] == "websocket":
        await receive()  # connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": FLOOR_REPLY})  # stands in for metadata
        while (await receive())["type"] != "websocket.disconnect":
            await send({"type": "websocket.send", "bytes": FLOOR_REPLY})


def bare_fastapi_app():
    """The floor under the app's framework: FastAPI with one ordinary route like ``/v1/act``,
    reading the body and answering the fixed reply (no decode, checks, worker or middleware)."""
    app = FastAPI()

    @app.post("/v1/act")
    async def act(request: Request) -> Response:
        await request.body()
        return Response(FLOOR_REPLY, media_type=wire.MSGPACK_CONTENT_TYPE)

    @app.get("/readyz")
    async def ready() -> Response:
        return Response(b"{}", media_type="application/json")

    return app


def serve_openpi_style(port: int) -> None:
    """The peer: a ``websockets`` asyncio server in openpi's style, same no-op policy, msgpack.

    Per connection: send the metadata, then for each binary frame decode the observation, run
    the policy inline on the event loop, answer actions + server timing. ``GET /readyz`` answers
    200 (a health check like openpi's), so the harness waits for it as for the others."""
    import asyncio
    from http import HTTPStatus

    from websockets.asyncio.server import serve as ws_serve

    policy = _make_policy("noop")
    metadata = wire.packb(policy.metadata.to_dict())

    async def session(ws) -> None:
        await ws.send(metadata)
        async for frame in ws:
            start = time.perf_counter()
            obs = wire.unpackb(frame)
            actions = policy.predict(obs)
            ms = (time.perf_counter() - start) * 1e3
            await ws.send(wire.packb({keys.WIRE_ACTIONS: actions, keys.WIRE_TIMING: {
                keys.TIMING_INFERENCE_MS: ms, keys.TIMING_TOTAL_MS: ms,
                keys.TIMING_BATCH_SIZE: 1}}))

    def health(connection, request):
        if request.path == "/readyz":
            return connection.respond(HTTPStatus.OK, "ready\n")
        return None

    async def run() -> None:
        async with ws_serve(session, "127.0.0.1", port, compression=None, max_size=None,
                            process_request=health) as server:
            await server.serve_forever()

    asyncio.run(run())


def serve_raw_tcp(port: int) -> None:
    """The floor under HTTP: length-prefixed request bytes in, fixed reply out, one connection."""
    with socket.create_server(("127.0.0.1", port)) as srv:
        srv.listen()
        while True:
            conn, _ = srv.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with conn:
                while header := conn.recv(8):
                    buf = memoryview(bytearray(int.from_bytes(header, "little")))
                    got = 0
                    while got < len(buf):
                        got += conn.recv_into(buf[got:])
                    conn.sendall(FLOOR_REPLY)


def serve(kind: str, port: int, max_batch_size: int) -> None:
    from stare_robot.server import ServerSettings, create_app
    from stare_robot.server.runner import serve_forever

    if kind == "raw-tcp":
        serve_raw_tcp(port)
        return
    if kind == "openpi-style":
        serve_openpi_style(port)
        return
    if kind in ("minimal-asgi", "fastapi-floor"):
        import uvicorn

        app = minimal_asgi if kind == "minimal-asgi" else bare_fastapi_app()
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning",
                    ws_per_message_deflate=False, ws_max_size=2**24)
        return

    settings = {"port": port, "max_batch_size": max_batch_size, "batch_wait_ms": 2.0,
                "log_level": "warning"}
    if kind == "tiny":
        ckpt = _save_tiny_checkpoint(Path(tempfile.mkdtemp(prefix="stare-bench-")))
        app = create_app(ServerSettings(ckpt=ckpt, **settings))
    else:
        app = create_app(ServerSettings(**settings), policy=_make_policy(kind))
    serve_forever(app)


class ServerProcess:
    def __init__(self, kind: str, max_batch_size: int = 1) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--port", str(self.port),
             "--max-batch-size", str(max_batch_size)])
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {kind} exited with {self.proc.returncode}")
            try:
                if kind == "raw-tcp":
                    socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                    return
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except (httpx.TransportError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server {kind} not ready in 300 s")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


# --- the client side ---

def make_observation(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {CAMERA: rng.integers(0, 256, IMAGE, dtype=np.uint8),
            keys.OBS_STATE: rng.standard_normal(STATE_DIM).astype(np.float32),
            keys.INSTRUCTION: "push the cube to the goal"}


def json_body(obs: dict, fmt: str) -> bytes:
    """The request as the client would encode it (encoding time is part of the round trip)."""
    def enc(v):
        if not isinstance(v, np.ndarray):
            return v
        if fmt == "json-lists":
            return v.tolist()
        return {"__numpy__": base64.b64encode(v.tobytes()).decode(), "dtype": v.dtype.str,
                "shape": list(v.shape)}

    return json.dumps({keys.WIRE_OBSERVATION: {k: enc(v) for k, v in obs.items()}}).encode()


class HttpxClient:
    """The JSON baselines posted with httpx, as a typical client would."""

    def __init__(self, url: str, fmt: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self.fmt = fmt

    def infer(self, obs: dict) -> dict:
        r = self.http.post("/v1/act", content=json_body(obs, self.fmt),
                           headers={"content-type": "application/json"})
        r.raise_for_status()
        return r.json()

    def close(self) -> None:
        self.http.close()


class FloorHttpClient:
    """msgpack posted to an HTTP floor with the standard library's keep-alive connection, the
    client PolicyClient's HTTP transport uses (floors answer without server timing)."""

    def __init__(self, url: str) -> None:
        import http.client

        self.conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=60)

    def infer(self, obs: dict) -> dict:
        self.conn.request("POST", "/v1/act", wire.packb({keys.WIRE_OBSERVATION: obs}),
                          {"Content-Type": wire.MSGPACK_CONTENT_TYPE})
        r = self.conn.getresponse()
        body = r.read()
        assert r.status == 200, body
        return {**wire.unpackb(body), keys.WIRE_TIMING: NO_TIMING}

    def close(self) -> None:
        self.conn.close()


NO_TIMING = {keys.TIMING_INFERENCE_MS: 0.0, keys.TIMING_BATCH_SIZE: 1}


class FloorWebsocketClient:
    """The same websocket client library PolicyClient uses, against the minimal ASGI app."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect("ws" + url[len("http"):] + "/", max_size=None,
                          compression=None).__enter__()
        self.ws.recv(timeout=60)

    def infer(self, obs: dict) -> dict:
        self.ws.send(wire.packb(obs))
        return {**wire.unpackb(self.ws.recv(timeout=60)), keys.WIRE_TIMING: NO_TIMING}

    def close(self) -> None:
        self.ws.close()


class RawTcpClient:
    """The same request bytes over a bare TCP socket (length-prefixed), fixed reply."""

    def __init__(self, url: str) -> None:
        port = int(url.rsplit(":", 1)[1])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def infer(self, obs: dict) -> dict:
        body = wire.packb({keys.WIRE_OBSERVATION: obs})
        self.sock.sendall(len(body).to_bytes(8, "little") + body)
        reply = b""
        while len(reply) < len(FLOOR_REPLY):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("raw TCP floor server closed the connection")
            reply += chunk
        return {**wire.unpackb(reply), keys.WIRE_TIMING: NO_TIMING}

    def close(self) -> None:
        self.sock.close()


def make_client(url: str, fmt: str):
    if fmt in ("json-lists", "json-b64numpy"):
        return HttpxClient(url, fmt)
    if fmt in ("floor-asgi-http", "floor-fastapi-http"):
        return FloorHttpClient(url)
    if fmt == "floor-raw-tcp":
        return RawTcpClient(url)
    if fmt == "floor-asgi-websocket":
        return FloorWebsocketClient(url)
    # ours and the openpi-style peer: the same PolicyClient
    transport = "http" if fmt == "msgpack-http" else "websocket"
    return PolicyClient(url, transport=transport, timeout=60)


def run_client(url: str, fmt: str, n: int, warmup: int, seed: int, barrier=None) -> list:
    """n closed-loop requests -> [(round-trip ms, server inference ms, batch size)]."""
    client = make_client(url, fmt)
    obs = make_observation(seed)
    for _ in range(warmup):
        client.infer(obs)
    if barrier is not None:
        barrier.wait(60)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        reply = client.infer(obs)
        rtt = (time.perf_counter() - t0) * 1e3
        timing = reply[keys.WIRE_TIMING]
        out.append((rtt, timing[keys.TIMING_INFERENCE_MS], timing[keys.TIMING_BATCH_SIZE]))
    client.close()
    return out


def _client_proc(args) -> list:
    url, fmt, n, warmup, seed, barrier = args
    return run_client(url, fmt, n, warmup, seed, barrier)


def summarize(samples: list, wall_s: float, cpu_s: float) -> dict:
    rtt = np.array([s[0] for s in samples])
    overhead = np.array([s[0] - s[1] for s in samples])
    pct = lambda a, q: round(float(np.percentile(a, q)), 3)
    return {
        "requests": len(samples),
        "rtt_ms": {"p50": pct(rtt, 50), "p95": pct(rtt, 95), "p99": pct(rtt, 99)},
        "overhead_ms": {"p50": pct(overhead, 50), "p95": pct(overhead, 95),
                        "p99": pct(overhead, 99)},
        "model_ms_p50": pct(np.array([s[1] for s in samples]), 50),
        "mean_batch_size": round(float(np.mean([s[2] for s in samples])), 2),
        "requests_per_s": round(len(samples) / wall_s, 1),
        "server_cpu_ms_per_request": round(cpu_s * 1e3 / len(samples), 3),
    }


def measure(server: ServerProcess, fmt: str, n: int, clients: int = 1, warmup: int = 10) -> dict:
    cpu0, t0 = server.cpu_seconds(), time.perf_counter()
    if clients == 1:
        samples = run_client(server.url, fmt, n, warmup, 0)  # (warm-up counted in wall/cpu)
    else:
        ctx = mp.get_context("spawn")
        barrier = ctx.Manager().Barrier(clients)
        with ctx.Pool(clients) as pool:
            parts = pool.map(_client_proc, [(server.url, fmt, n, warmup, i, barrier)
                                            for i in range(clients)])
        samples = [s for part in parts for s in part]
    return summarize(samples, time.perf_counter() - t0, server.cpu_seconds() - cpu0)


def uptime() -> str:
    """``uptime``'s line (load averages), recorded with the results."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer requests, one no-op run, no tiny model (a smoke run)")
    parser.add_argument("--no-tiny", action="store_true", help="skip the real tiny pi0 model")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of the no-op section (best run reported, all kept); "
                             "default 3, or 1 with --quick")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results JSON (+ .png beside it); default "
                             f"{DEFAULT_OUT.relative_to(ROOT)} (--quick: "
                             f"{DEFAULT_OUT_QUICK.relative_to(ROOT)})")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-batch-size", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.max_batch_size)
        return 0
    repeats = args.repeats or (1 if args.quick else 3)
    out_path = args.out or (DEFAULT_OUT_QUICK if args.quick else DEFAULT_OUT)

    n_fast = 100 if args.quick else 1000
    n_lists = 10 if args.quick else 50
    n_slow = 20 if args.quick else 100
    n_tiny = 30
    with_tiny = not (args.no_tiny or args.quick)
    uptime_at_start = uptime()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results: dict = {"single_client": {}, "four_clients": {}, "noop_runs": []}

    # every no-op variant, the peer and the floors, interleaved, `repeats` times
    variants = [("noop", "websocket", n_fast), ("openpi-style", "openpi-style-websocket", n_fast),
                ("noop", "msgpack-http", n_fast), ("noop", "json-b64numpy", n_fast // 2),
                ("noop", "json-lists", n_lists),
                ("raw-tcp", "floor-raw-tcp", n_fast), ("minimal-asgi", "floor-asgi-http", n_fast),
                ("minimal-asgi", "floor-asgi-websocket", n_fast),
                ("fastapi-floor", "floor-fastapi-http", n_fast)]
    servers = {kind: ServerProcess(kind)
               for kind in ("noop", "openpi-style", "raw-tcp", "minimal-asgi", "fastapi-floor")}
    try:
        for run in range(repeats):
            print(f"[noop + peer + floors] run {run + 1}/{repeats}", flush=True)
            one_run = {"load_average_1min": round(os.getloadavg()[0], 2)}
            for kind, fmt, n in variants:
                one_run[fmt] = measure(servers[kind], fmt, n, warmup=3 if n < 50 else 10)
                print(f"  {fmt}: {one_run[fmt]['rtt_ms']}", flush=True)
            results["noop_runs"].append(one_run)
        for fmt in ("websocket", "msgpack-http"):
            results["four_clients"][f"noop/{fmt}/batching-off"] = measure(
                servers["noop"], fmt, n_fast // 2, clients=4)
    finally:
        for server in servers.values():
            server.stop()
    runs = results["noop_runs"]
    for _, fmt, _ in variants:  # the best run per variant, with the spread of p50 over runs
        best = min((r[fmt] for r in runs), key=lambda m: m["rtt_ms"]["p50"])
        p50s = [r[fmt]["rtt_ms"]["p50"] for r in runs]
        results["single_client"][f"noop/{fmt}"] = {**best, "p50_over_runs_ms": p50s}

    for kind, n in [("sleep20", n_slow)] + ([("tiny", n_tiny)] if with_tiny else []):
        for batch in (1, 4):
            label = "batching-off" if batch == 1 else "batching-on"
            print(f"[{kind}] {label}", flush=True)
            server = ServerProcess(kind, max_batch_size=batch)
            try:
                if batch == 1:
                    for fmt in ("websocket", "msgpack-http"):
                        results["single_client"][f"{kind}/{fmt}"] = measure(server, fmt, n,
                                                                            warmup=3)
                for fmt in ("websocket", "msgpack-http"):
                    key = f"{kind}/{fmt}/{label}"
                    results["four_clients"][key] = measure(server, fmt, n, clients=4, warmup=3)
                    print(f"  4 clients {fmt}: {results['four_clients'][key]['rtt_ms']} "
                          f"batch {results['four_clients'][key]['mean_batch_size']}", flush=True)
            finally:
                server.stop()

    single = results["single_client"]

    def p50(fmt: str) -> float:
        return single[f"noop/{fmt}"]["rtt_ms"]["p50"]

    def ratios(slow: str, fast: str) -> list[float]:  # slow p50 / fast p50, within each run
        return [round(r[slow]["rtt_ms"]["p50"] / r[fast]["rtt_ms"]["p50"], 2) for r in runs]

    checks = {
        "websocket_p50_ms": p50("websocket"),
        "openpi_style_websocket_p50_ms": p50("openpi-style-websocket"),
        "msgpack_http_p50_ms": p50("msgpack-http"),
        "websocket_over_openpi_style_per_run": ratios("websocket", "openpi-style-websocket"),
        "msgpack_http_over_websocket_per_run": ratios("msgpack-http", "websocket"),
        "b64json_over_websocket_per_run": ratios("json-b64numpy", "websocket"),
        "b64json_over_msgpack_http_per_run": ratios("json-b64numpy", "msgpack-http"),
        "floor_raw_tcp_p50_ms": p50("floor-raw-tcp"),
        "floor_minimal_asgi_http_p50_ms": p50("floor-asgi-http"),
        "floor_minimal_asgi_websocket_p50_ms": p50("floor-asgi-websocket"),
        "floor_bare_fastapi_http_p50_ms": p50("floor-fastapi-http"),
        "sleep20_4clients_ws_p50_batching_off_ms":
            results["four_clients"]["sleep20/websocket/batching-off"]["rtt_ms"]["p50"],
        "sleep20_4clients_ws_p50_batching_on_ms":
            results["four_clients"]["sleep20/websocket/batching-on"]["rtt_ms"]["p50"],
    }
    median = lambda xs: float(np.median(xs))
    checks["targets_met"] = {  # the median run's ratio
        "websocket_p50_le_1.5x_openpi_style":
            median(checks["websocket_over_openpi_style_per_run"]) <= 1.5,
        "msgpack_http_p50_le_2x_websocket":
            median(checks["msgpack_http_over_websocket_per_run"]) <= 2.0,
    }
    out = {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/server_latency.py",
                                                      *sys.argv[1:]]),
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    # other work on the machine inflates every number; recorded for context
                    "uptime_at_start": uptime_at_start, "uptime_at_end": uptime(),
                    "load_average_1_5_15_at_start": load_at_start,
                    "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()]},
        "request": {"image": list(IMAGE), "state_dim": STATE_DIM, "instruction": True},
        "notes": "rtt = client round trip incl. client encode/decode; overhead = rtt - server "
                 "inference_ms of the same request; 4-client runs use 4 client processes on the "
                 "same machine as the server, so they include CPU contention. "
                 "single_client noop entries are the best of noop_runs (all runs kept there, "
                 "p50_over_runs_ms gives the spread). websocket, openpi-style-websocket and "
                 "msgpack-http use PolicyClient (websocket / websocket / http transport, the "
                 "latter on http.client, as do the HTTP floors); the json-* baselines use httpx; "
                 "openpi-style is a websockets "
                 "asyncio server in openpi's style serving the same no-op policy; floor-* are a "
                 "raw TCP socket, a minimal ASGI app and a one-route FastAPI app under the same "
                 "uvicorn (no model, no checks).",
        "targets": {"websocket_over_openpi_style": 1.5, "msgpack_http_over_websocket": 2.0},
        "headline": checks,
        **results,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2))
    _plot(out, out_path.with_suffix(".png"))
    print(json.dumps(checks, indent=2))
    print(f"{out['machine']['uptime_at_end']}\nwrote {out_path}")
    return 0


def _plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = {k: v for k, v in out["single_client"].items() if k.startswith("noop/")}
    names = [k.removeprefix("noop/") for k in single]
    p50 = [v["rtt_ms"]["p50"] for v in single.values()]
    p99 = [v["rtt_ms"]["p99"] for v in single.values()]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(names))
    ax.bar(x - 0.2, p50, 0.4, label="p50")
    ax.bar(x + 0.2, p99, 0.4, label="p99")
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("round trip, ms (log)")
    ax.set_title("no-op policy (floors: no server; openpi-style: the peer), 1 client, "
                 "224x224x3 image + 8-D state; best of runs", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
