"""The lean HTTP/1.1 connection under PolicyClient: framing, keep-alive, reconnects, bad answers.

A scripted loopback socket server answers with exact bytes (chunked bodies, ``Connection: close``,
garbage) that uvicorn never sends, so every branch of the response reader is exercised.
"""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
from server_fakes import MixingPolicy, make_observation

from stare_robot.client import PolicyClient
from stare_robot.client_http import HttpConnection, HttpConnectionError

pytest_plugins = ["server_fixtures"]  # serve


class ScriptedServer:
    """Answers the i-th request with ``answers[i]`` (sent in small pieces); records requests.

    An answer ending with ``CLOSE`` closes the connection after it is sent."""

    CLOSE = object()

    def __init__(self, answers: list) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = threading.Semaphore(0)  # released each time the server closed a connection
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _read_request(self, conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def _serve(self) -> None:
        while not self._stop.is_set() and self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(5)
                while self.answers and (request := self._read_request(conn)) is not None:
                    self.requests.append(request)
                    answer = self.answers.pop(0)
                    close = isinstance(answer, tuple)
                    raw = answer[0] if close else answer
                    for i in range(0, len(raw), 7):  # small pieces: the reader must reassemble
                        conn.sendall(raw[i:i + 7])
                    if close:
                        break
            self.closed.release()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def scripted():
    servers: list[ScriptedServer] = []

    def start(answers: list) -> ScriptedServer:
        servers.append(ScriptedServer(answers))
        return servers[-1]

    yield start
    for srv in servers:
        srv.stop()


def connection(url: str) -> HttpConnection:
    return HttpConnection(url, timeout=5.0, connect_timeout=2.0, headers={"Authorization": "t"})


def test_chunked_and_sized_bodies_on_one_keep_alive_connection(scripted):
    srv = scripted([
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
         b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n"),
        b"HTTP/1.1 422 Unprocessable\r\nContent-Length: 4\r\n\r\nnope",
    ])
    conn = connection(srv.url)
    first = conn.request("POST", "/v1/act", b"\x00\x01body", {"Content-Type": "x/y"})
    assert (first.status, first.body, first.headers["x-a"]) == (200, b"hello, world", "1, 2")
    second = conn.request("GET", "/v1/metadata")
    assert (second.status, second.text) == (422, "nope")
    assert srv.connections == 1  # kept alive
    head, _, body = srv.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/act HTTP/1.1\r\n") and body == b"\x00\x01body"
    for line in (b"Content-Length: 6", b"Content-Type: x/y", b"Authorization: t", b"Host: 127.0.0.1"):
        assert line in head
    conn.close()


def test_reconnects_after_connection_close_and_after_the_server_drops_an_idle_connection(scripted):
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    srv = scripted([
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na",
        (ok, ScriptedServer.CLOSE),  # closed by the server without telling the client
        (b"HTTP/1.0 200 OK\r\n\r\nto the end", ScriptedServer.CLOSE),  # body runs to the close
        ok,
    ])
    conn = connection(srv.url)
    assert conn.request("GET", "/").body == b"a"
    assert conn.request("GET", "/").body == b"ok"
    assert srv.closed.acquire(timeout=5) and srv.closed.acquire(timeout=5)  # both really closed
    assert conn.request("GET", "/").body == b"to the end"  # no error: a fresh connection
    assert conn.request("GET", "/").body == b"ok"
    assert srv.connections == 4
    conn.close()


@pytest.mark.parametrize("answer, words", [
    (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x answer"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed the connection"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "malformed chunked"),
])
def test_a_malformed_or_truncated_answer_is_a_connection_error(scripted, answer, words):
    srv = scripted([(answer, ScriptedServer.CLOSE)])
    with pytest.raises(HttpConnectionError, match=words):
        connection(srv.url).request("GET", "/")


def test_policy_client_posts_every_request_over_one_connection(serve):
    srv = serve(MixingPolicy())
    obs = make_observation(np.random.default_rng(5))
    with PolicyClient(srv.url, transport="http") as client:
        for _ in range(5):
            assert np.array_equal(client.predict(obs), MixingPolicy().predict(obs))
    # the server keys peers by client address:port, so 1 means one keep-alive connection
    assert srv.app.state.stare.peers.count() == 1


def test_bad_urls_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpConnection("ftp://host", timeout=1, connect_timeout=1)
