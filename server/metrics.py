"""Prometheus metrics (``GET /metrics``) with ``prometheus_client``, one registry per app.

Series: ``stare_requests_total{route,status}`` (HTTP requests and websocket frames),
``stare_request_seconds{route}`` (histogram), ``stare_batch_size`` and ``stare_inference_seconds``
(histograms of the worker's policy calls). Route labels are fixed route templates only, so a
fuzzer hitting random paths adds no series. A registry per app (not the process-global default)
keeps several servers in one process (tests, notebooks) apart.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                     5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
OTHER_ROUTE = "other"
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The server's series; thread-safe (the event loop and the worker thread both record)."""

    def __init__(self, routes: list[str]) -> None:
        self.routes = set(routes)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("stare_requests", "Requests (and websocket frames) by route/status.",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("stare_request_seconds", "Time inside the server per request.",
                                 ["route"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.batch_size = Histogram("stare_batch_size", "Requests per policy call.",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.inference = Histogram("stare_inference_seconds", "Duration of each policy call.",
                                   buckets=LATENCY_BUCKETS_S, registry=self.registry)

    def record_request(self, route: str, status: int, seconds: float) -> None:
        route = route if route in self.routes else OTHER_ROUTE
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def record_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)

    def render(self) -> bytes:
        """The exposition text of every series."""
        return generate_latest(self.registry)
