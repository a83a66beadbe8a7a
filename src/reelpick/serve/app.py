"""The FastAPI application factory: ``create_app(settings)`` (no module-global app or engine).

At start-up (the ASGI lifespan) the app loads the model bundle, opens the event log and starts
its writer; at shutdown it commits what is queued and closes the log. Tests swap the model with
``loader=`` and the log with ``store=``.

>>> app = create_app(Settings(api_key="k", data_dir="/tmp/rp-doc"))
>>> sorted(app.openapi()["paths"])[:3]
['/healthz', '/metrics', '/v1/admin/precompute']
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from reelpick.serve import errors
from reelpick.serve.bundle import BundleLoader, load_bundle, prepared
from reelpick.serve.metrics import Metrics
from reelpick.serve.middleware import BodyLimitMiddleware, MetricsMiddleware
from reelpick.serve.routers import admin, events, health, homepage, titles, web
from reelpick.serve.settings import Settings
from reelpick.serve.state import ServiceState
from reelpick.serve.store import EventStore


def limit_threads(n: int = 1) -> None:
    """One BLAS/OpenMP thread: the server is concurrent already, and a BLAS pool per request
    thread made a numpy top-k endpoint 20x slower on a 2-core machine."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)


def open_event_log(settings: Settings) -> EventStore:
    """The event log the settings name: PostgreSQL when ``event_log`` is set
    (:class:`~reelpick.serve.pgstore.PostgresEventStore`, same interface), else the SQLite file
    at ``settings.db_path``."""
    if settings.event_log is not None:
        from reelpick.serve.pgstore import PostgresEventStore

        return PostgresEventStore(  # type: ignore[return-value]
            settings.event_log.get_secret_value(), group_commit=settings.group_commit,
            max_jobs=settings.commit_max_jobs, delay_s=settings.commit_delay_ms / 1000.0)
    return EventStore(settings.db_path, group_commit=settings.group_commit,
                      max_jobs=settings.commit_max_jobs,
                      delay_s=settings.commit_delay_ms / 1000.0,
                      synchronous=settings.synchronous)


class ServiceApp(FastAPI):
    """FastAPI with a fast path in front of its middleware stack: ``fast_path(scope, receive,
    send)`` answers what it can (``True``), else the request goes through the framework. Not
    taken while FastAPI's own OpenTelemetry instrumentation is on, so traced requests stay
    traced."""

    fast_path: Callable[[Scope, Receive, Send], Awaitable[bool]] | None = None
    _tracing: tuple[float, bool] = (-1.0, False)  # (when checked, whether on)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and scope["type"] == "http" and not self._traced(scope) and (
                await fast(scope, receive, send)):
            return
        await super().__call__(scope, receive, send)

    def _traced(self, scope: Scope) -> bool:
        """Whether FastAPI's telemetry would trace this request (looked up once a second)."""
        if "fastapi.telemetry" in scope:
            return True
        now = time.monotonic()
        checked, on = self._tracing
        if now - checked > 1.0:
            telemetry = getattr(self, "_native_telemetry", None)
            on = telemetry is not None and bool(telemetry.enabled())
            self._tracing = (now, on)
        return on


def _cache_info(state: ServiceState | None) -> dict[str, int]:
    info = getattr(state.bundle.provider, "cache_info", None) if state is not None else None
    return info() if info is not None else {}


def create_app(settings: Settings, *, loader: BundleLoader = load_bundle,
               store: EventStore | None = None, metrics: Metrics | None = None) -> FastAPI:
    """Build the service. Nothing is loaded or opened until the app starts (lifespan).

    Parameters
    ----------
    settings : the configuration (e.g. ``Settings()`` reads ``REELPICK_*`` variables).
    loader : builds the :class:`~reelpick.serve.bundle.ModelBundle` (catalogue + provider) at
        start-up and on every reload; the default reads ``settings.model_dir``.
    store : an event log to use (the caller then owns it and closes it); default: a new one,
        :func:`open_event_log` (SQLite at ``settings.db_path``, or PostgreSQL).
    metrics : a :class:`Metrics` registry (default: a new one per app).
    """
    metrics = metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_threads(1)
        bundle = await anyio.to_thread.run_sync(lambda: prepared(loader(settings)))
        own = store is None
        log = store if store is not None else await anyio.to_thread.run_sync(open_event_log,
                                                                              settings)
        log.on_commit = metrics.on_commit
        metrics.track_queue(log.queue_depth)
        metrics.track_page_cache(
            lambda: _cache_info(getattr(app.state, "service", None)))
        log.start()
        app.state.service = state = ServiceState(settings, log, loader, bundle, metrics)
        watch = (asyncio.create_task(state.watch(settings.watch_seconds))
                 if settings.watch_seconds > 0 and settings.model_dir is not None else None)
        try:
            yield
        finally:
            if watch is not None:
                watch.cancel()
            if own:
                await anyio.to_thread.run_sync(log.close)

    app = ServiceApp(
        title="reelpick",
        summary="Personalised home pages with exact propensities and a durable event log.",
        version="1",
        lifespan=lifespan,
    )
    errors.install(app)
    for r in (homepage.router, events.router, titles.router, admin.router, health.router,
              web.router):
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # well-formed home page requests skip the framework (same answer; invalid ones reach it)
    app.fast_path = homepage.HomepageFastPath(lambda: getattr(app.state, "service", None))
    return app


def app_from_env() -> FastAPI:
    """``create_app(Settings())``: settings from ``REELPICK_*`` variables, for
    ``uvicorn --factory reelpick.serve.app:app_from_env``."""
    return create_app(Settings())
