"""Pure ASGI middleware: request size limit and per-route metrics (cheaper than BaseHTTP)."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelpick.serve.errors import item
from reelpick.serve.metrics import Metrics


class _TooLarge(Exception):
    pass


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})


class BodyLimitMiddleware:
    """Answer 413 (JSON naming ``body``) when a request body exceeds ``max_bytes``: by its
    ``Content-Length`` before reading, or while reading a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = {"detail": [item(["body"], f"request body larger than {self.max_bytes} bytes",
                                   "too_large")]}
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    n = int(value)
                except ValueError:
                    n = -1
                if n < 0 or n > self.max_bytes:
                    await _send_json(send, 413 if n > 0 else 400, too_big)
                    return
        seen = 0
        exceeded = started = False

        async def limited() -> Message:
            nonlocal seen, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise _TooLarge
            return msg

        async def guarded(msg: Message) -> None:
            # the framework may turn the read error into its own 400: answer 413 instead
            nonlocal started
            if exceeded:
                if not started:
                    started = True
                    await _send_json(send, 413, too_big)
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, guarded)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, too_big)
        except BaseExceptionGroup as group:  # anyio task groups wrap it
            if group.subgroup(_TooLarge) is None:
                raise
            if not started:
                await _send_json(send, 413, too_big)


class MetricsMiddleware:
    """Count requests and observe latency per route template (``/v1/titles/{title_id}``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def tracking(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, tracking)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            if name.startswith("/static"):
                name = "/static"
            self.metrics.request(scope["method"], name, status, time.perf_counter() - t0)
