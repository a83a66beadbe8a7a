"""``GET /v1/homepage``: compose a page, log every slot durably, answer."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from reelpick.serve.deps import BundleDep, StateDep
from reelpick.serve.errors import ApiError
from reelpick.serve.provider import PageContext
from reelpick.serve.schemas import ErrorOut, HomepageOut, HomepageQuery
from reelpick.serve.store import PageRecord, StoreClosedError, StoreWriteError

router = APIRouter(prefix="/v1", tags=["homepage"])
_NO_STORE = {"Cache-Control": "no-store"}
_COLD = {True: "true", False: "false"}


@router.get("/homepage", response_model=HomepageOut, response_class=JSONResponse,
            responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
async def homepage(q: Annotated[HomepageQuery, Query()], state: StateDep,
                   bundle: BundleDep) -> Response:
    """The member's home page in context. Every slot carries the decision id to send events
    with and the exact propensity it was shown with; the page is in the log before it is
    answered. An unknown member gets the cold-start page (popular in the context)."""
    cat = bundle.catalog
    now = int(time.time())
    country = q.country or cat.member_country.get(q.member) or cat.countries[0]
    if country not in cat.countries:
        raise ApiError(422, ["query", "country"],
                       f"unknown country {country!r}; known: {list(cat.countries)}", "enum")
    tm = time.gmtime(now)
    ctx = PageContext(device=q.device, country=country,
                      hour=tm.tm_hour if q.hour is None else q.hour,
                      day_of_week=tm.tm_wday if q.day_of_week is None else q.day_of_week,
                      timestamp=now)
    page = bundle.provider.compose(q.member, ctx, state.rng())
    page_id = uuid.uuid4().hex
    provider = bundle.provider
    record = PageRecord(
        page_id=page_id, timestamp=now, member_id=q.member, device=ctx.device,
        country=ctx.country, hour=ctx.hour, day_of_week=ctx.day_of_week, policy=provider.name,
        model_version=provider.version, row_labels=page.row_labels, titles=page.title_ids,
        artworks=page.artwork_ids, row_index=page.row_index, position=page.position,
        propensity=page.propensity, artwork_propensity=page.artwork_propensity,
        explored=page.explored)
    try:
        done = state.store.submit_page(record)
    except StoreClosedError as exc:
        raise ApiError(503, [], f"the page could not be logged: {exc}", "unavailable") from None
    # serialise while the log writer commits; the answer leaves only once the page is durable
    body = bundle.renderer.render(page_id, q.member, page, {
        "device": ctx.device, "country": ctx.country, "hour": ctx.hour,
        "day_of_week": ctx.day_of_week, "timestamp": now})
    try:
        await asyncio.wrap_future(done)
    except (StoreClosedError, StoreWriteError) as exc:
        raise ApiError(503, [], f"the page could not be logged: {exc}", "unavailable") from None
    state.metrics.pages.labels(_COLD[page.cold_start]).inc()
    state.metrics.impressions.inc(page.n_slots)
    return Response(body, media_type="application/json", headers=_NO_STORE)
