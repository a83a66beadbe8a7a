"""The FastAPI application factory: ``create_app(settings)`` (no module-global app or engine).

At start-up (the ASGI lifespan) the app loads the model bundle, opens the event log and starts
its writer; at shutdown it commits what is queued and closes the log. Tests swap the model with
``loader=`` and the log with ``store=``.

>>> app = create_app(Settings(api_key="k", data_dir="/tmp/rp-doc"))
>>> sorted(app.openapi()["paths"])[:3]
['/healthz', '/metrics', '/v1/admin/reload']
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

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


def create_app(settings: Settings, *, loader: BundleLoader = load_bundle,
               store: EventStore | None = None, metrics: Metrics | None = None) -> FastAPI:
    """Build the service. Nothing is loaded or opened until the app starts (lifespan).

    Parameters
    ----------
    settings : the configuration (e.g. ``Settings()`` reads ``REELPICK_*`` variables).
    loader : builds the :class:`~reelpick.serve.bundle.ModelBundle` (catalogue + provider) at
        start-up and on every reload; the default reads ``settings.model_dir``.
    store : an event log to use (the caller then owns it and closes it); default: a new
        :class:`EventStore` at ``settings.db_path``.
    metrics : a :class:`Metrics` registry (default: a new one per app).
    """
    metrics = metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_threads(1)
        bundle = await anyio.to_thread.run_sync(lambda: prepared(loader(settings)))
        own = store is None
        log = store or EventStore(settings.db_path, group_commit=settings.group_commit,
                                  max_jobs=settings.commit_max_jobs,
                                  delay_s=settings.commit_delay_ms / 1000.0,
                                  synchronous=settings.synchronous)
        log.on_commit = metrics.on_commit
        metrics.track_queue(log.queue_depth)
        log.start()
        app.state.service = ServiceState(settings, log, loader, bundle, metrics)
        try:
            yield
        finally:
            if own:
                await anyio.to_thread.run_sync(log.close)

    app = FastAPI(
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
    return app


def app_from_env() -> FastAPI:
    """``create_app(Settings())``: settings from ``REELPICK_*`` variables, for
    ``uvicorn --factory reelpick.serve.app:app_from_env``."""
    return create_app(Settings())
