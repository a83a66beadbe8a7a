"""Prometheus metrics of one app instance (its own registry, so several apps can coexist)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_JOBS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_BATCH = (1, 2, 4, 8, 12, 16, 24, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Counters and histograms exposed at ``GET /metrics`` (text format 0.0.4)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("reelpick_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("reelpick_http_request_duration_seconds",
                                 "Time to answer, by route", ["route"], buckets=_LATENCY,
                                 registry=r)
        self.pages = Counter("reelpick_pages_served", "Home pages served",
                             ["cold_start"], registry=r)
        self.impressions = Counter("reelpick_impressions_logged",
                                   "Slots (impressions) logged with their propensity",
                                   registry=r)
        self.events = Counter("reelpick_events", "Client events by result",
                              ["result"], registry=r)
        self.commit_jobs = Histogram("reelpick_log_transaction_jobs",
                                     "Requests committed per event-log transaction (group "
                                     "commit)", buckets=_JOBS, registry=r)
        self.commit_seconds = Histogram("reelpick_log_transaction_duration_seconds",
                                        "Event-log transaction time including fsync",
                                        buckets=_LATENCY, registry=r)
        self.batch_pages = Histogram("reelpick_homepage_batch_pages",
                                     "Home pages composed together in one pass of the policy "
                                     "(dynamic batching: REELPICK_BATCH_WAIT_MS, "
                                     "REELPICK_BATCH_MAX)", buckets=_BATCH, registry=r)
        self.queue_depth = Gauge("reelpick_log_queue_depth", "Jobs waiting for the log writer",
                                 registry=r)
        self.model = Gauge("reelpick_model_info", "The model version being served",
                           ["version", "policy"], registry=r)
        self.reloads = Counter("reelpick_model_reloads", "Model reloads by result",
                               ["result"], registry=r)
        self.precomputed = Counter("reelpick_pages_precomputed",
                                   "Pages composed ahead by POST /v1/admin/precompute",
                                   registry=r)
        self.page_cache = Gauge("reelpick_page_cache", "The served policy's page cache: "
                                "pages remembered, and hits and misses since the model loaded "
                                "(stored: hits found in the shared page store)",
                                ["what"], registry=r)

        # label children looked up once (``labels()`` validates and locks on every call)
        self._pages = {cold: self.pages.labels("true" if cold else "false")
                       for cold in (False, True)}
        self._routes: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def page_served(self, cold_start: bool, n_slots: int) -> None:
        """Count a home page and its logged slots."""
        self._pages[cold_start].inc()
        self.impressions.inc(n_slots)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a request and observe its latency."""
        key = (method, route, status)
        hit = self._routes.get(key)
        if hit is None:
            hit = (self.requests.labels(method, route, str(status)), self.latency.labels(route))
            if len(self._routes) < 10_000:
                self._routes[key] = hit
        hit[0].inc()
        hit[1].observe(seconds)

    def on_commit(self, n_jobs: int, seconds: float) -> None:
        self.commit_jobs.observe(n_jobs)
        self.commit_seconds.observe(seconds)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def track_page_cache(self, info: Callable[[], dict[str, int]]) -> None:
        """Read the page cache's ``{"pages", "hits", "misses", "stored"}`` from ``info`` at
        every scrape (``stored``: hits found in the shared page store)."""
        def reader(what: str) -> Callable[[], float]:
            return lambda: float(info().get(what, 0))

        for what in ("pages", "hits", "misses", "stored"):
            self.page_cache.labels(what).set_function(reader(what))

    def set_model(self, version: str, policy: str) -> None:
        self.model.clear()
        self.model.labels(version=version, policy=policy).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
