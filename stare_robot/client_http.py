"""A minimal keep-alive HTTP/1.1 connection on a blocking socket: the policy client's hot path.

httpx spends ~0.4 ms of Python per request here (URL and header models, the h11 state machine,
cookies, a connection pool), more than a whole no-op inference on the server. A robot posting one
observation at a time to one known server needs none of that, so this speaks just enough HTTP/1.1:
one request at a time on one persistent connection (reopened when the server has closed it),
``Content-Length`` or chunked response bodies, per-operation timeouts, optional TLS. Standard
library only.

    conn = HttpConnection("http://127.0.0.1:8000", timeout=10.0, connect_timeout=3.0)
    r = conn.request("POST", "/v1/act", body, {"Content-Type": "application/msgpack"})
    r.status, r.headers["content-type"], r.body
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024  # status line + headers of one response
_RECV_BYTES = 256 * 1024


class HttpConnectionError(ConnectionError):
    """No connection, or it broke before the answer was complete (the caller may retry)."""


class HttpTimeout(TimeoutError):
    """Connected, but the server did not accept the request or answer within the timeout."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class HttpConnection:
    """One persistent connection to ``url``'s host; ``request`` reconnects when needed."""

    def __init__(self, url: str, *, timeout: float, connect_timeout: float,
                 headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        host_header = self.host if ":" not in self.host else f"[{self.host}]"  # IPv6 literal
        self._fixed_head = f"Host: {host_header}:{self.port}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._sock: socket.socket | None = None
        self._poller: select.poll | None = None  # POLLIN on _sock: made once per connection
        self._buf = b""

    def request(self, method: str, path: str, body: bytes = b"",
                headers: Mapping[str, str] | None = None) -> HttpResponse:
        """Send one request and read its whole answer; raises HttpConnectionError/HttpTimeout."""
        if self._sock is not None and self._closed_by_peer():
            self.close()  # the server dropped the idle keep-alive connection: open a new one
        if self._sock is None:
            self._connect()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"{method} {path} HTTP/1.1\r\n{self._fixed_head}{extra}"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        try:
            # one send: head and body in two writes would cost a second syscall (and segment)
            self._sock.sendall(head + body if body else head)
            return self._read_response()
        except TimeoutError:
            self.close()  # a late answer must not be read as the next request's
            raise HttpTimeout(f"no answer from {self.host}:{self.port} within {self.timeout} s") \
                from None
        except (OSError, ValueError) as e:  # reset, broken pipe, EOF, malformed answer
            self.close()
            raise HttpConnectionError(f"{type(e).__name__}: {e}") from None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock, self._poller = None, None
                self._buf = b""

    # --- internals ---

    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as e:  # refused, unreachable, connect timeout: all worth a retry
            raise HttpConnectionError(f"cannot connect to {self.host}:{self.port} "
                                      f"({type(e).__name__}: {e})") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            try:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
            except (OSError, ssl.SSLError) as e:
                sock.close()
                raise HttpConnectionError(f"TLS handshake with {self.host}:{self.port} failed "
                                          f"({e})") from None
        sock.settimeout(self.timeout)
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        self._sock, self._buf = sock, b""

    def _closed_by_peer(self) -> bool:
        """An idle connection with something to read has been closed (or reset) by the server."""
        return bool(self._poller.poll(0))

    def _recv(self) -> bytes:
        data = self._sock.recv(_RECV_BYTES)
        if not data:
            raise ConnectionError("server closed the connection before the answer was complete")
        return data

    def _read_until(self, delimiter: bytes, limit: int, what: str) -> bytes:
        """The buffered answer up to ``delimiter`` (consumed, not returned)."""
        while (end := self._buf.find(delimiter)) < 0:
            if len(self._buf) > limit:
                raise ValueError(f"answer {what} longer than {limit} bytes")
            self._buf += self._recv()
        out, self._buf = self._buf[:end], self._buf[end + len(delimiter):]
        return out

    def _read_line(self, limit: int) -> bytes:
        return self._read_until(b"\r\n", limit, "line")

    def _read_exactly(self, n: int) -> bytes:
        if len(self._buf) < n:
            parts, have = [self._buf], len(self._buf)
            while have < n:
                data = self._recv()
                parts.append(data)
                have += len(data)
            self._buf = b"".join(parts)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_head(self) -> tuple[int, dict[str, str], bool]:
        head = self._read_until(b"\r\n\r\n", MAX_HEAD_BYTES, "headers")
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise ValueError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"malformed header line {line[:80]!r}")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        keep_alive = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        return int(rest[:3]), headers, keep_alive

    def _read_response(self) -> HttpResponse:
        status, headers, keep_alive = self._read_head()
        while 100 <= status < 200:  # interim answers (100 Continue): the real one follows
            status, headers, keep_alive = self._read_head()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            body = self._read_exactly(int(headers["content-length"]))
        elif status in (204, 304):
            body = b""
        else:  # no length given: the body runs to the end of the connection
            parts = [self._buf]
            while data := self._sock.recv(_RECV_BYTES):
                parts.append(data)
            body, keep_alive = b"".join(parts), False
        if not keep_alive:
            self.close()
        return HttpResponse(status, headers, body)

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self._read_line(1024).split(b";")[0], 16)
            if size == 0:
                while self._read_line(MAX_HEAD_BYTES):  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exactly(size))
            if self._read_exactly(2) != b"\r\n":
                raise ValueError("malformed chunked body")
