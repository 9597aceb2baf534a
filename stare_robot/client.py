"""Light client for the policy server: numpy + msgpack + websockets (+ the standard library's
``http.client``), never torch.

:class:`PolicyClient` *is* a :class:`~stare_robot.policies.base.Policy`, so any loop that takes a
policy (evaluation, ROS nodes) can drive a remote one::

    from stare_robot.client import PolicyClient

    with PolicyClient("http://127.0.0.1:8000", token=None, expect={"action_dim": 7}) as policy:
        chunk = policy.predict({"obs/base_camera/rgb": rgb, "obs/state": state,
                                "instruction": "push the cube to the goal"})  # (chunk, 7) float32

Transports (``transport=``):

* ``"websocket"`` (the default; ``"ws"`` is accepted as an alias): one persistent ``/v1/stream``
  session speaking openpi's protocol (msgpack frames), the lowest latency;
* ``"http"``: msgpack ``POST /v1/act`` over one keep-alive connection of the standard library's
  :mod:`http.client` (half the per-request cost of httpx here), for proxies or load balancers
  that do not pass websockets.

``url`` may be ``http(s)://`` or ``ws(s)://host:port`` (the same server either way).
``token=`` is the server's ``--auth-token`` (sent as ``Authorization: Bearer <token>``); a missing
or wrong one raises :class:`PolicyAuthError` at once, never retried. Both transports check the
observation locally first with the server's own rules (:mod:`stare_robot.validation`: a bad one
raises :class:`PolicyObservationError` without a round trip), reconnect with bounded,
exponentially backed-off retries when the server restarts (checking that it still serves the same
policy), and fail with a clear :class:`PolicyServerTimeout` when it does not answer.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, Self

import numpy as np

from stare_robot import keys, wire
from stare_robot.policies.base import (
    ArraySpec,
    Observation,
    ObservationError,
    Policy,
    PolicyMetadata,
)
from stare_robot.validation import ChunkError, validate_chunk, validate_observation


class HttpAnswer(NamedTuple):
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive connection with something to read has been closed (or reset)."""
    return bool(select.select([sock], [], [], 0)[0])

Transport = Literal["websocket", "ws", "http"]
TRANSPORT_ALIASES = {"websocket": "websocket", "ws": "websocket", "http": "http"}
DEFAULT_TRANSPORT = "websocket"

_MSGPACK_HEADERS = {"Content-Type": wire.MSGPACK_CONTENT_TYPE, "Accept": wire.MSGPACK_CONTENT_TYPE}
_URL_SCHEMES = {"http://": "http://", "https://": "https://", "ws://": "http://",
                "wss://": "https://"}


class PolicyServerError(RuntimeError):
    """The server refused or failed a request (``status``, ``detail``, ``request_id``)."""

    def __init__(self, message: str, status: int | None = None, detail: str = "",
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.request_id = request_id


class PolicyRequestError(PolicyServerError, ValueError):
    """4xx: the request was wrong (bad observation, missing/wrong token, too large)."""


class PolicyAuthError(PolicyRequestError):
    """401/403: the server requires a bearer token and this one is missing or wrong. Never
    retried: the same token would be refused again."""


class PolicyObservationError(PolicyRequestError, ObservationError):
    """The observation breaks the policy's input rules; refused before sending (the server would
    answer 422 with the same words)."""


class PolicyServerTimeout(PolicyServerError, TimeoutError):
    """No answer within the client's timeout."""


class PolicyServerUnavailable(PolicyServerError, ConnectionError):
    """Could not reach a ready server, even after the retries."""


class MetadataMismatch(PolicyServerError):
    """The server hosts a different policy than expected (or than before a reconnect)."""


def metadata_from_dict(d: Mapping[str, Any]) -> PolicyMetadata:
    """``GET /v1/metadata`` JSON (or the websocket's first frame) -> :class:`PolicyMetadata`."""
    try:
        return PolicyMetadata(
            name=str(d["name"]), version=str(d["version"]), action_space=str(d["action_space"]),
            action_dim=int(d["action_dim"]), chunk_size=int(d["chunk_size"]),
            control_rate_hz=float(d["control_rate_hz"]),
            inputs={k: ArraySpec(tuple(int(n) for n in v["shape"]), str(v["dtype"]))
                    for k, v in d["inputs"].items()},
            instruction_required=bool(d.get("instruction_required", True)),
            extra=dict(d.get("extra") or {}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise MetadataMismatch(f"server metadata is not a policy description ({e!r})") from None


def _error_from(status: int, text: str, where: str) -> PolicyServerError:
    try:
        body = json.loads(text)
        detail, request_id = str(body.get("detail", text)), body.get(keys.WIRE_REQUEST_ID)
    except (ValueError, AttributeError):
        detail, request_id = text, None
    if status in (401, 403):
        return PolicyAuthError(
            f"{where}: authentication failed (HTTP {status}): {detail}; pass the server's "
            "--auth-token as the client's token", status, detail, request_id)
    cls = PolicyRequestError if 400 <= status < 500 else PolicyServerError
    return cls(f"{where}: HTTP {status}: {detail}", status, detail, request_id)


class PolicyClient(Policy):
    """A remote policy behind ``stare-robot serve``; see the module docstring."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        transport: Transport = DEFAULT_TRANSPORT,
        token: str | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
        retries: int = 3,
        backoff_s: float = 0.05,
        expect: Mapping[str, Any] | None = None,
        connect: bool = True,
    ) -> None:
        if transport not in TRANSPORT_ALIASES:
            raise ValueError(f"transport must be one of {sorted(TRANSPORT_ALIASES)} ('ws' = "
                             f"'websocket'), got {transport!r}")
        scheme = next((s for s in _URL_SCHEMES if url.startswith(s)), None)
        if scheme is None:
            raise ValueError(f"url must start with one of {list(_URL_SCHEMES)}, got {url!r}")
        self.url = (_URL_SCHEMES[scheme] + url[len(scheme):]).rstrip("/")
        self.transport = TRANSPORT_ALIASES[transport]
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.expect = dict(expect or {})
        unknown = set(self.expect) - set(PolicyMetadata.__dataclass_fields__)
        if unknown:
            raise ValueError(f"expect has unknown metadata field(s) {sorted(unknown)}; valid: "
                             f"{sorted(PolicyMetadata.__dataclass_fields__)}")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http: http.client.HTTPConnection | None = None
        self._ws = None
        self._metadata: PolicyMetadata | None = None
        self.server_metadata: dict[str, Any] = {}
        if connect:
            self.connect()

    # --- Policy interface ---

    @property
    def metadata(self) -> PolicyMetadata:
        if self._metadata is None:
            self.connect()
        assert self._metadata is not None
        return self._metadata

    def predict(self, obs: Observation) -> np.ndarray:
        """One observation -> float32 action chunk ``(chunk_size, action_dim)``.

        Like an in-process policy (same rules, :mod:`stare_robot.validation`), it reads only the
        inputs the metadata declares and the instruction: other keys of ``obs`` (e.g. a
        simulator's extra arrays) are ignored and not sent."""
        return self.infer(obs)[keys.WIRE_ACTIONS]

    def infer(self, obs: Observation) -> dict[str, Any]:
        """One observation -> the full answer: actions, server_timing, request_id."""
        meta = self.metadata
        try:
            clean = validate_observation(obs, meta)
        except ObservationError as e:
            raise PolicyObservationError(f"{self.url}: observation refused before sending: {e}",
                                         422, str(e)) from None
        if self.transport == "websocket":
            answer = self._infer_ws(wire.packb(clean))
        else:
            body = wire.packb({keys.WIRE_OBSERVATION: clean})
            r = self._request("POST", "/v1/act", body, _MSGPACK_HEADERS)
            if r.status_code != 200:
                raise _error_from(r.status_code, r.text, f"{self.url}/v1/act")
            try:
                answer = wire.unpackb(r.content)
            except wire.WireError as e:
                raise PolicyServerError(f"{self.url}/v1/act: answer is not msgpack ({e})") \
                    from None
        return self._checked_answer(answer, meta)

    def _checked_answer(self, answer: Any, meta: PolicyMetadata) -> dict[str, Any]:
        """The answer holds a finite chunk of the advertised shape, else PolicyServerError."""
        if not isinstance(answer, dict) or keys.WIRE_ACTIONS not in answer:
            raise PolicyServerError(f"{self.url}: answer has no {keys.WIRE_ACTIONS!r} field")
        try:
            answer[keys.WIRE_ACTIONS] = validate_chunk(answer[keys.WIRE_ACTIONS], meta.action_dim,
                                                       chunk_size=meta.chunk_size)
        except ChunkError as e:
            raise PolicyServerError(f"{self.url}: server answered a bad chunk: {e}") from None
        return answer

    # --- connection management ---

    def connect(self) -> PolicyMetadata:
        """(Re)connect and check the server's metadata against ``expect`` and any earlier one."""
        if self.transport == "websocket":
            self._open_ws()
        else:
            r = self._request("GET", "/v1/metadata")
            if r.status_code != 200:
                raise _error_from(r.status_code, r.text, f"{self.url}/v1/metadata")
            try:
                self._accept_metadata(json.loads(r.content))
            except ValueError as e:
                raise MetadataMismatch(f"{self.url}/v1/metadata is not JSON ({e})") from None
        assert self._metadata is not None
        return self._metadata

    def _accept_metadata(self, d: Mapping[str, Any]) -> None:
        meta = metadata_from_dict(d)
        got = meta.to_dict()
        wrong = {k: (v, got[k]) for k, v in self.expect.items() if got[k] != v}
        if wrong:
            lines = ", ".join(f"{k}: expected {a!r}, server has {b!r}" for k, (a, b) in wrong.items())
            raise MetadataMismatch(f"{self.url} serves a different policy ({lines})")
        if self._metadata is not None and meta != self._metadata:
            raise MetadataMismatch(f"{self.url} changed policy across a reconnect: was "
                                   f"{self._metadata.name} {self._metadata.version}, now "
                                   f"{meta.name} {meta.version}")
        self._metadata = meta
        self.server_metadata = dict(d)

    def _sleep_before_retry(self, attempt: int) -> None:
        time.sleep(self.backoff_s * (2**attempt))

    def _http_connection(self) -> http.client.HTTPConnection:
        """The one keep-alive connection, (re)opened when absent or closed by the server."""
        conn = self._http
        if conn is not None and conn.sock is not None and _closed_by_peer(conn.sock):
            conn.close()  # the server dropped the idle connection (keep-alive timeout, restart)
        if conn is None:
            parts = urllib.parse.urlsplit(self.url)
            tls = parts.scheme == "https"
            cls = http.client.HTTPSConnection if tls else http.client.HTTPConnection
            conn = self._http = cls(parts.hostname, parts.port, timeout=self.connect_timeout)
        if conn.sock is None:
            conn.connect()  # bounded by connect_timeout; then each read/write by timeout
            conn.sock.settimeout(self.timeout)
        return conn

    def _request(self, method: str, path: str, body: bytes = b"",
                 headers: Mapping[str, str] | None = None) -> HttpAnswer:
        """HTTP with bounded retries on connection failures and 503 (model loading)."""
        where = f"{self.url}{path}"
        target = urllib.parse.urlsplit(self.url).path.rstrip("/") + path
        last = ""
        for attempt in range(self.retries + 1):
            try:
                conn = self._http_connection()
            except OSError as e:  # refused, unreachable, connect timeout, TLS: worth a retry
                self._close_http()
                last = f"{type(e).__name__}: {e}"
            else:
                try:
                    conn.request(method, target, body=body or None,
                                 headers={**self._headers, **(headers or {})})
                    response = conn.getresponse()
                    answer = HttpAnswer(response.status, response.read())
                except TimeoutError:
                    # the server took the request but did not answer: retrying would double it
                    self._close_http()  # a late answer would be mistaken for the next one's
                    raise PolicyServerTimeout(f"{where}: no answer within {self.timeout} s") \
                        from None
                except (http.client.HTTPException, OSError) as e:  # reset, closed, malformed
                    self._close_http()
                    last = f"{type(e).__name__}: {e}"
                else:
                    if response.will_close:
                        self._close_http()
                    if answer.status_code != 503:
                        return answer
                    last = f"HTTP 503: {answer.text}"
            if attempt < self.retries:
                self._sleep_before_retry(attempt)
        raise PolicyServerUnavailable(f"{where}: unreachable after {self.retries + 1} attempts "
                                      f"({last})")

    def _close_http(self) -> None:
        if self._http is not None:
            self._http.close()  # the object stays; the next request reconnects

    def _ws_url(self) -> str:
        return "ws" + self.url[len("http"):] + "/v1/stream"

    def _open_ws(self) -> None:
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        self._close_ws()
        last = ""
        for attempt in range(self.retries + 1):
            try:
                # entered like a context manager (websockets >= 17.1 deprecates bare use);
                # closed by _close_ws
                ws = connect(self._ws_url(), additional_headers=self._headers,
                             open_timeout=self.connect_timeout, max_size=None,
                             compression=None).__enter__()
            except InvalidStatus as e:
                status = e.response.status_code
                text = e.response.body.decode("utf-8", "replace") if e.response.body else ""
                if status != 503:
                    raise _error_from(status, text, self._ws_url()) from None
                last = f"HTTP 503: {text}"
            except TimeoutError:
                # TCP accepted but no handshake answer: a hung server, not a restarting one
                raise PolicyServerTimeout(f"{self._ws_url()}: no handshake answer within "
                                          f"{self.connect_timeout} s") from None
            except (OSError, WebSocketException) as e:
                last = f"{type(e).__name__}: {e}"
            else:
                try:
                    first = ws.recv(timeout=self.timeout)
                except TimeoutError:
                    ws.close()
                    raise PolicyServerTimeout(f"{self._ws_url()}: no metadata within "
                                              f"{self.timeout} s") from None
                except WebSocketException as e:
                    last = f"{type(e).__name__}: {e}"
                else:
                    self._ws = ws
                    self._accept_metadata(wire.unpackb(first))
                    return
            if attempt < self.retries:
                self._sleep_before_retry(attempt)
        raise PolicyServerUnavailable(f"{self._ws_url()}: unreachable after {self.retries + 1} "
                                      f"attempts ({last})")

    def _infer_ws(self, frame: bytes) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        for attempt in range(self.retries + 1):
            if self._ws is None:
                self._open_ws()
            try:
                self._ws.send(frame)
                reply = self._ws.recv(timeout=self.timeout)
            except TimeoutError:
                self._close_ws()  # a late answer would be mistaken for the next one's
                raise PolicyServerTimeout(f"{self._ws_url()}: no answer within {self.timeout} s") \
                    from None
            except ConnectionClosed:
                self._close_ws()  # server restarted: reconnect (checks metadata) and resend
                if attempt < self.retries:
                    self._sleep_before_retry(attempt)
                    continue
                raise PolicyServerUnavailable(f"{self._ws_url()}: connection lost") from None
            if isinstance(reply, str):
                try:
                    status = int(json.loads(reply).get("status", 500))
                except (ValueError, AttributeError, TypeError):
                    status = 500
                raise _error_from(status, reply, self._ws_url())
            return wire.unpackb(reply)
        raise PolicyServerUnavailable(f"{self._ws_url()}: connection lost")

    def _close_ws(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:  # noqa: BLE001, S110 (already broken; nothing more to release)
                pass
            self._ws = None

    def close(self) -> None:
        self._close_ws()
        self._close_http()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
