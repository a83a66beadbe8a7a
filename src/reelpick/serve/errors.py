"""One JSON error shape for every 4xx/5xx: ``{"detail": [{"field", "loc", "msg", "type"}]}``.

``field`` names the offending input the way a client writes it: ``events[3].kind``,
``query.hour``, ``header.X-API-Key``. Nothing of the input is echoed back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("reelpick.serve")


class ApiError(Exception):
    """An error answered with ``status`` and one detail item naming ``loc``."""

    def __init__(self, status: int, loc: Sequence[str | int], msg: str, type: str = "invalid",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status, self.loc, self.msg, self.type = status, list(loc), msg, type
        self.headers = headers


def field_name(loc: Sequence[str | int]) -> str | None:
    """``("body", "events", 3, "kind")`` -> ``"events[3].kind"``; query, path and header
    locations keep their prefix (``query.hour``)."""
    parts = list(loc)
    if not parts:
        return None
    if parts[0] == "body":
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "body"


def item(loc: Sequence[str | int], msg: str, type: str) -> dict[str, Any]:
    return {"field": field_name(loc), "loc": list(loc), "msg": msg, "type": type}


def error_response(status: int, items: list[dict[str, Any]],
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": items}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for e in exc.errors():
            loc = [p if isinstance(p, int) else str(p) for p in e.get("loc", ())]
            msg = str(e.get("msg", "invalid"))
            if e.get("type") == "extra_forbidden":
                msg = "unknown field"
            elif e.get("type") == "json_invalid":
                ctx = e.get("ctx") or {}
                msg = f"invalid JSON: {ctx.get('error', 'decode error')} at position {loc[-1]}"
                loc = ["body"]
            items.append(item(loc, msg, str(e.get("type", "invalid"))))
        return error_response(422, items)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, [item(exc.loc, exc.msg, exc.type)], exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI raises 400 only when it cannot decode the body (e.g. bytes that are not
        # UTF-8 under a JSON content type); 404/405 are about the path
        loc = {400: ["body"], 404: ["path"], 405: ["path"]}.get(exc.status_code, [])
        return error_response(exc.status_code, [item(loc, str(exc.detail), "http")],
                              getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, [item([], "internal error", "internal")])
