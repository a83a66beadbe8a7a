"""The per-app service state: settings, event log, metrics and the swappable model bundle."""

from __future__ import annotations

import asyncio
import time

import anyio.to_thread
import numpy as np

from reelpick.serve.bundle import BundleLoader, ModelBundle, prepared
from reelpick.serve.errors import log
from reelpick.serve.metrics import Metrics
from reelpick.serve.model_dir import read_manifest
from reelpick.serve.settings import Settings
from reelpick.serve.store import EventStore


class ServiceState:
    """Everything a request needs. ``bundle`` is replaced by :meth:`reload` with one attribute
    assignment: a request that already read it keeps the old bundle to the end, a later request
    gets the new one, so no request is dropped or sees a mix."""

    def __init__(self, settings: Settings, store: EventStore, loader: BundleLoader,
                 bundle: ModelBundle, metrics: Metrics) -> None:
        self.settings, self.store, self.loader, self.metrics = settings, store, loader, metrics
        self.bundle = bundle
        self._reload_lock = asyncio.Lock()
        self._rng = np.random.default_rng(settings.seed)
        metrics.set_model(bundle.version, bundle.provider.name)

    def rng(self) -> np.random.Generator:
        """The page generator. Pages are composed on the event-loop thread only, so one
        generator is safe; seeded by ``settings.seed`` (fresh entropy when ``None``). A new
        generator per request would cost an OS entropy read (~0.2 ms)."""
        return self._rng

    async def watch(self, seconds: float) -> None:
        """Every ``seconds``, read the model directory's manifest and :meth:`reload` when it
        names another version than the one served (``settings.watch_seconds``; runs until
        cancelled). A failed load keeps the old model, counts in the reload metrics, is
        logged, and is tried again only once the manifest changes again."""
        model_dir = self.settings.model_dir
        if model_dir is None:
            return
        last: str | None = None  # what the manifest said at the last look
        while True:
            await asyncio.sleep(seconds)
            try:
                version = str(read_manifest(model_dir)["version"])
            except (ValueError, KeyError) as exc:
                if last != f"unreadable: {exc}":
                    log.warning("model watch: %s", exc)
                last = f"unreadable: {exc}"
                continue
            if version != self.bundle.version and version != last:
                try:
                    old, new, took = await self.reload()
                except Exception as exc:  # noqa: BLE001 - the old model keeps serving
                    log.warning("model watch: version %s did not load, old model kept: %s",
                                version, exc)
                else:
                    log.info("model watch: %s -> %s in %.2f s", old.version, new.version, took)
            last = version

    async def reload(self) -> tuple[ModelBundle, ModelBundle, float]:
        """Load a new bundle in a worker thread and swap it in; ``(old, new, seconds)``."""
        async with self._reload_lock:
            t0 = time.perf_counter()
            try:
                new = await anyio.to_thread.run_sync(
                    lambda: prepared(self.loader(self.settings)))
            except Exception:
                self.metrics.reloads.labels("error").inc()
                raise
            old, self.bundle = self.bundle, new
            self.metrics.set_model(new.version, new.provider.name)
            self.metrics.reloads.labels("ok").inc()
            return old, new, time.perf_counter() - t0
