"""Prometheus text-format metrics (``GET /metrics``), kept in-process without extra dependencies.

Series: ``stare_requests_total{route,status}``, ``stare_request_seconds`` (histogram per route),
``stare_batch_size`` and ``stare_inference_seconds`` (histograms of the worker's policy calls).
Route labels are fixed route templates only, so a fuzzer hitting random paths adds no series.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                     5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
OTHER_ROUTE = "other"


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # last = +Inf
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def render(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        lines, cumulative = [], 0
        for bound, count in zip((*self.buckets, "+Inf"), self.counts):
            cumulative += count
            lines.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {cumulative}')
        wrap = f"{{{labels}}}" if labels else ""
        lines += [f"{name}_sum{wrap} {self.total}", f"{name}_count{wrap} {self.n}"]
        return lines


class Metrics:
    """Thread-safe counters and histograms; the event loop and the worker thread both record."""

    def __init__(self, routes: list[str]) -> None:
        self.routes = set(routes)
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.inference = Histogram(LATENCY_BUCKETS_S)

    def record_request(self, route: str, status: int, seconds: float) -> None:
        route = route if route in self.routes else OTHER_ROUTE
        with self._lock:
            self.requests[(route, status)] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS_S)).observe(seconds)

    def record_batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self.batch_size.observe(size)
            self.inference.observe(seconds)

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP stare_requests_total Requests (and websocket frames) by route/status.",
                     "# TYPE stare_requests_total counter"]
            for (route, status), n in sorted(self.requests.items()):
                lines.append(f'stare_requests_total{{route="{route}",status="{status}"}} {n}')
            lines += ["# HELP stare_request_seconds Time inside the server per request.",
                      "# TYPE stare_request_seconds histogram"]
            for route, hist in sorted(self.latency.items()):
                lines += hist.render("stare_request_seconds", f'route="{route}"')
            lines += ["# HELP stare_batch_size Requests per policy call.",
                      "# TYPE stare_batch_size histogram", *self.batch_size.render("stare_batch_size"),
                      "# HELP stare_inference_seconds Duration of each policy call.",
                      "# TYPE stare_inference_seconds histogram",
                      *self.inference.render("stare_inference_seconds")]
        return "\n".join(lines) + "\n"
