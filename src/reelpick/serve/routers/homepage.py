"""``GET /v1/homepage``: compose a page, log every slot durably, answer.

One implementation (:func:`start_pages`: compose, queue to the log, serialise while the log
commits; the answer leaves once the page is durable), two ways in:

* the FastAPI route: query validation, the error answers and the OpenAPI document
  (``response_model=HomepageOut`` documents the answer; no model is built per request);
* :class:`HomepageFastPath`, which the app calls before its middleware stack: it answers a
  well-formed query (plain ``key=value`` pairs of known keys, each valid, no percent-escapes, no
  body) without the framework's middleware, routing, dependency injection and query model
  (together they cost about as much as composing the page), and composes the pages of the
  requests that arrive together in one pass. Anything else falls through to the route, so
  every invalid request gets exactly the route's answer, and a valid one the same page either
  way (same headers, same metrics).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from reelpick.data.schema import DEVICES
from reelpick.serve.bundle import ModelBundle
from reelpick.serve.catalog import Catalog
from reelpick.serve.deps import BundleDep, StateDep
from reelpick.serve.errors import ApiError, error_response, item, log
from reelpick.serve.provider import Page, PageContext
from reelpick.serve.schemas import ErrorOut, HomepageOut, HomepageQuery
from reelpick.serve.state import ServiceState
from reelpick.serve.store import PageRecord, StoreClosedError, StoreWriteError

PATH = "/v1/homepage"
router = APIRouter(prefix="/v1", tags=["homepage"])
_NO_STORE = {"Cache-Control": "no-store"}


@router.get("/homepage", response_model=HomepageOut, response_class=JSONResponse,
            responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
async def homepage(q: Annotated[HomepageQuery, Query()], state: StateDep,
                   bundle: BundleDep) -> Response:
    """The member's home page in context. Every slot carries the decision id to send events
    with and the exact propensity it was shown with; the page is in the log before it is
    answered. An unknown member gets the cold-start page (popular in the context)."""
    body = await answer(state, bundle, q.member, q.device, q.country, q.hour, q.day_of_week,
                        at=q.at)
    return Response(body, media_type="application/json", headers=_NO_STORE)


#: ``(member, device, country, hour, day_of_week)``, optionally ``at`` (Unix seconds) last
Query_ = tuple[Any, ...]


@dataclass(frozen=True, eq=False)
class Started:
    """A page composed, queued to the log and serialised: ``body`` may leave once ``logged``
    (awaitable) completes; :meth:`finish` awaits it."""

    body: bytes
    logged: Awaitable[Any]
    cold_start: bool
    n_slots: int

    async def finish(self, state: ServiceState) -> bytes:
        """The body, once the page is durable (:class:`ApiError` 503 if it cannot be)."""
        try:
            await self.logged
        except (StoreClosedError, StoreWriteError) as exc:
            raise ApiError(503, [], f"the page could not be logged: {exc}",
                           "unavailable") from None
        state.metrics.page_served(self.cold_start, self.n_slots)
        return self.body


def _page_id() -> str:
    """32 hex digits: the nanosecond clock, then 64 random bits (unique and not guessable, as
    ``uuid4().hex`` was, but in time order, so the log's ``page_id`` index grows at its end
    instead of taking every insert at a random leaf: a quarter less CPU per logged page)."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


def page_context(catalog: Catalog, member: str, device: str, country: str | None,
                 hour: int | None, day_of_week: int | None, at: int | None, now: int, *,
                 where: str = "query") -> PageContext | ApiError:
    """The context a page is composed in: ``country`` defaults to the member's (the
    catalogue's first for unknown members), ``hour`` and ``day_of_week`` to the UTC time of
    ``at`` (default ``now``); the :class:`ApiError` to answer (422 naming ``where``.country)
    for a country the catalogue does not have."""
    ts = now if at is None else int(at)
    country = country or catalog.member_country.get(member) or catalog.countries[0]
    if country not in catalog.countries:
        return ApiError(422, [where, "country"],
                        f"unknown country {country!r}; known: {list(catalog.countries)}", "enum")
    if hour is None or day_of_week is None:
        tm = time.gmtime(ts)
        hour = tm.tm_hour if hour is None else hour
        day_of_week = tm.tm_wday if day_of_week is None else day_of_week
    return PageContext(device=device, country=country, hour=hour, day_of_week=day_of_week,
                       timestamp=ts)


def start_pages(state: ServiceState, bundle: ModelBundle, queries: Sequence[Query_]
                ) -> list[Started | ApiError]:
    """Compose the pages of ``queries`` (``(member, device, country, hour, day_of_week)``),
    queue each to the log and serialise it while the log commits; per query, a
    :class:`Started` page or the :class:`ApiError` to answer (422 unknown country, 503 log
    closed). A provider with ``compose_many`` composes them in one pass."""
    cat = bundle.catalog
    now = int(time.time())
    out: list[Started | ApiError | None] = [None] * len(queries)
    todo: list[tuple[int, str, PageContext]] = []
    for i, query in enumerate(queries):
        member, device, country, hour, day_of_week = query[:5]
        ctx = page_context(cat, member, device, country, hour, day_of_week,
                           query[5] if len(query) > 5 else None, now)
        if isinstance(ctx, ApiError):
            out[i] = ctx
        else:
            todo.append((i, member, ctx))
    if not todo:
        return out  # type: ignore[return-value]
    provider = bundle.provider
    rng = state.rng()
    many = getattr(provider, "compose_many", None)
    pages = (many([(m, c) for _, m, c in todo], rng) if many is not None and len(todo) > 1
             else [provider.compose(m, c, rng) for _, m, c in todo])
    records: list[PageRecord] = []
    to_render: list[tuple[str, str, Page, dict[str, Any]]] = []
    for (_, member, ctx), page in zip(todo, pages):
        page_id = _page_id()
        records.append(PageRecord(
            page_id=page_id, timestamp=ctx.timestamp, member_id=member, device=ctx.device,
            country=ctx.country, hour=ctx.hour, day_of_week=ctx.day_of_week,
            policy=provider.name, model_version=provider.version, row_labels=page.row_labels,
            titles=page.title_ids, artworks=page.artwork_ids, row_index=page.row_index,
            position=page.position, propensity=page.propensity,
            artwork_propensity=page.artwork_propensity, explored=page.explored))
        to_render.append((page_id, member, page, {
            "device": ctx.device, "country": ctx.country, "hour": ctx.hour,
            "day_of_week": ctx.day_of_week, "timestamp": ctx.timestamp}))
    store = state.store
    try:
        logged = _submit(store, records)
    except StoreClosedError as exc:
        err = ApiError(503, [], f"the page could not be logged: {exc}", "unavailable")
        for i, _, _ in todo:
            out[i] = err
        return out  # type: ignore[return-value]
    # serialised while the log writer commits; each leaves only once its page is durable
    bodies = bundle.renderer.render_many(to_render)
    for (i, _, _), page, body, done in zip(todo, pages, bodies, logged):
        out[i] = Started(body, done, bool(page.cold_start), page.n_slots)
    return out  # type: ignore[return-value]


def _submit(store: Any, records: list[PageRecord]) -> list[Awaitable[Any]]:
    """Queue the pages to the log; per page, what completes once it is durable. One job for
    them all when the store takes several (``submit_pages_async``), else one each."""
    many = getattr(store, "submit_pages_async", None)
    if many is not None:
        shared = many(records)
        # each its own view of the shared future: a cancelled request cancels only its own
        return [asyncio.shield(shared) for _ in records]
    one = getattr(store, "submit_page_async", None)
    if one is not None:
        return [one(r) for r in records]
    return [asyncio.wrap_future(store.submit_page(r)) for r in records]


async def answer(state: ServiceState, bundle: ModelBundle, member: str, device: str,
                 country: str | None, hour: int | None, day_of_week: int | None, *,
                 at: int | None = None) -> bytes:
    """Compose the page, queue it to the log, serialise it while the log commits, and return
    the JSON body once the page is durable. Raises :class:`ApiError` (422 unknown country,
    503 log unavailable)."""
    started = start_pages(state, bundle,
                          [(member, device, country, hour, day_of_week, at)])[0]
    if isinstance(started, ApiError):
        raise started
    return await started.finish(state)


# ---------------------------------------------------------------- the fast path
_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_HOUR = {str(i): i for i in range(24)}
_DAY = {str(i): i for i in range(7)}
_DEVICES = frozenset(DEVICES)
_KEYS = frozenset(("member", "device", "country", "hour", "day_of_week"))
_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def parse_query(raw: bytes) -> Query_ | None:
    """``(member, device, country, hour, day_of_week)`` of a plain, valid query string, or
    ``None`` for anything the route should judge (unknown, repeated or empty keys, escapes,
    values out of range or not in their canonical form)."""
    if not raw or b"%" in raw or b"+" in raw:
        return None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    q: dict[str, str] = {}
    for part in text.split("&"):
        key, sep, value = part.partition("=")
        if not sep or not value or key not in _KEYS or key in q:
            return None
        q[key] = value
    member = q.get("member")
    if member is None or _ID.fullmatch(member) is None:
        return None
    device = q.get("device", "web")
    if device not in _DEVICES:
        return None
    country = q.get("country")
    if country is not None and not (len(country) <= 16 and country.isascii()
                                    and country.isalpha()):
        return None
    hour = day = None
    if "hour" in q:
        hour = _HOUR.get(q["hour"])
        if hour is None:
            return None
    if "day_of_week" in q:
        day = _DAY.get(q["day_of_week"])
        if day is None:
            return None
    return member, device, country, hour, day


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
            return True
    return False


_Pending = tuple[ServiceState, Query_, "asyncio.Future[Started]"]


class HomepageFastPath:
    """Answer well-formed ``GET /v1/homepage`` requests without the framework (see the module
    docstring). Called by the app in front of its middleware stack: ``await fast(scope,
    receive, send)`` is ``True`` when it answered (counted in the metrics like the route), and
    ``False`` when the request is for the framework. ``state()`` returns the
    :class:`ServiceState` (``None`` before start-up).

    Requests are composed together (:func:`start_pages`, one pass of the provider's
    ``compose_many``; dynamic batching): the first one of a batch schedules it
    ``settings.batch_wait_ms`` later (``loop.call_later``), and every request that reaches it
    meanwhile joins, up to ``settings.batch_max`` (then it runs at once, and the next request
    starts another). Each request waits at most that long for the others; under load a batch
    of many pages costs a fraction of the CPU a page that one alone does (the fixed cost of a
    pass is shared). With ``batch_wait_ms=0`` a batch is the requests already scheduled when
    it runs (``loop.call_soon``): none waits for later ones."""

    def __init__(self, state: Callable[[], ServiceState | None]) -> None:
        self.state = state
        # requests waiting for the next batch, and its scheduled run, per event loop (one,
        # unless tests start more)
        self._pending: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        self._runs: dict[asyncio.AbstractEventLoop, asyncio.Handle] = {}

    def _join(self, loop: asyncio.AbstractEventLoop, entry: _Pending) -> None:
        """Add a request to the loop's next batch (scheduling the batch when it is the first)."""
        settings = entry[0].settings
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            wait = settings.batch_wait_ms / 1000.0
            self._runs[loop] = (loop.call_later(wait, self._flush, loop) if wait > 0
                                else loop.call_soon(self._flush, loop))
        pending.append(entry)
        if len(pending) >= settings.batch_max:  # full: it runs now; the next request starts
            del self._pending[loop]             # another
            self._runs.pop(loop).cancel()
            loop.call_soon(self._run, pending)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._runs.pop(loop, None)
        self._run(self._pending.pop(loop, []))

    def _run(self, batch: list[_Pending]) -> None:
        by_bundle: dict[int, list[_Pending]] = {}
        for entry in batch:
            if not entry[2].done():  # a cancelled request is not composed
                by_bundle.setdefault(id(entry[0].bundle), []).append(entry)
        for items in by_bundle.values():
            state = items[0][0]
            state.metrics.batch_pages.observe(len(items))
            try:
                results: list[Any] = start_pages(state, state.bundle, [q for _, q, _ in items])
            except Exception as exc:  # noqa: BLE001 - each request answers it (500)
                results = [exc] * len(items)
            for (_, _, waiter), res in zip(items, results):
                if not waiter.done():
                    if isinstance(res, BaseException):
                        waiter.set_exception(res)
                    else:
                        waiter.set_result(res)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        if not (scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET"):
            return False
        q = parse_query(scope["query_string"])
        state = self.state() if q is not None else None
        if state is None or _has_body(scope):
            return False
        t0 = time.perf_counter()
        status = 500
        started = False
        try:
            try:
                loop = asyncio.get_running_loop()
                waiter: asyncio.Future[Started] = loop.create_future()
                self._join(loop, (state, q, waiter))  # type: ignore[arg-type]
                body = await (await waiter).finish(state)
            except ApiError as exc:
                status = exc.status
                started = True
                await error_response(exc.status, [item(exc.loc, exc.msg, exc.type)],
                                     exc.headers)(scope, receive, send)
                return True
            status = 200
            started = True
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(len(body)).encode()), *_HEADERS]})
            await send({"type": "http.response.body", "body": body})
            return True
        except Exception as exc:  # as the framework's error middleware: log, 500, re-raise
            status = 500
            log.exception("unhandled error", exc_info=exc)
            if not started:
                await error_response(500, [item([], "internal error", "internal")])(
                    scope, receive, send)
            raise
        finally:
            state.metrics.request("GET", PATH, status, time.perf_counter() - t0)
