"""``/v1/admin/*`` (API key): ``POST reload`` swaps in the model directory's current version;
``POST precompute`` composes members' pages before they are asked for."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter

from reelpick.serve.deps import AdminKeyDep, StateDep
from reelpick.serve.errors import ApiError
from reelpick.serve.provider import PageContext
from reelpick.serve.routers.homepage import page_context
from reelpick.serve.schemas import ErrorOut, PrecomputeIn, PrecomputeOut, ReloadOut

router = APIRouter(prefix="/v1/admin", tags=["admin"])

#: Pages composed between two turns of the event loop while precomputing: live requests wait
#: for at most one chunk.
PRECOMPUTE_CHUNK = 16


@router.post("/reload", response_model=ReloadOut,
             responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut},
                        409: {"model": ErrorOut}})
async def reload(state: StateDep, _: AdminKeyDep) -> ReloadOut:
    """Load the model directory's current version in the background and swap it in atomically;
    requests in flight finish on the old model, none is dropped. On failure the old model stays
    (409)."""
    try:
        old, new, seconds = await state.reload()
    except (OSError, ValueError, KeyError) as exc:
        raise ApiError(409, ["model_dir"], f"reload failed, old model kept: {exc}",
                       "reload_failed") from None
    return ReloadOut(model_version=new.version, previous_version=old.version,
                     seconds=round(seconds, 4))


@router.post("/precompute", response_model=PrecomputeOut,
             responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut},
                        409: {"model": ErrorOut}, 422: {"model": ErrorOut}})
async def precompute(body: PrecomputeIn, state: StateDep, _: AdminKeyDep) -> PrecomputeOut:
    """Compose the members' pages for one context and hour ahead of their visits (the
    nearline job: e.g. at the start of every hour, for the members likely to visit on their
    usual device). A page asked for later in the same context and hour is then the remembered
    one, with the same titles and propensities it would have had (only its exploration and
    images are drawn per request), at a fraction of the cost. Pages are composed
    :data:`PRECOMPUTE_CHUNK` at a time between requests and written to the page store too,
    whose pages of hours before the one asked for are deleted first (``pruned``); a reload
    forgets the pages remembered in the process (run it again after publishing)."""
    bundle = state.bundle
    provider = bundle.provider
    run = getattr(provider, "precompute", None)
    if run is None:
        raise ApiError(409, [], f"the served provider {provider.name!r} cannot precompute pages",
                       "unsupported")
    now = int(time.time())
    requests: list[tuple[str, PageContext]] = []
    for member in body.members:
        ctx = page_context(bundle.catalog, member, body.device, body.country, body.hour,
                           body.day_of_week, body.at, now, where="body")
        if isinstance(ctx, ApiError):
            raise ctx
        requests.append((member, ctx))
    t0 = time.perf_counter()
    prune = getattr(provider, "prune_store", None)  # the pages' hour: the same for them all
    pruned = 0 if prune is None else prune(requests[0][1].timestamp // 3600)
    composed = 0
    for lo in range(0, len(requests), PRECOMPUTE_CHUNK):
        composed += run(requests[lo:lo + PRECOMPUTE_CHUNK])
        await asyncio.sleep(0)  # let the requests waiting meanwhile be answered
    state.metrics.precomputed.inc(composed)
    info = getattr(provider, "cache_info", None)
    cached = int(info()["pages"]) if info is not None else composed
    return PrecomputeOut(pages=len(requests), composed=composed, cached=cached, pruned=pruned,
                         seconds=round(time.perf_counter() - t0, 4),
                         model_version=provider.version)
