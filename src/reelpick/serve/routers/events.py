"""``POST /v1/events``: client events, acknowledged only once durable; idempotent on event id."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter

from reelpick.serve.deps import ApiKeyDep, StateDep
from reelpick.serve.errors import ApiError
from reelpick.serve.schemas import ErrorOut, EventsIn, EventsOut
from reelpick.serve.store import (
    EventRecord,
    StoreClosedError,
    StoreWriteError,
    UnknownDecisionError,
)

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", response_model=EventsOut,
             responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut},
                        413: {"model": ErrorOut}, 422: {"model": ErrorOut},
                        503: {"model": ErrorOut}})
async def post_events(body: EventsIn, state: StateDep, _: ApiKeyDep) -> EventsOut:
    """Log a batch of events (all or none). A 200 means every event is on disk; an event whose
    ``event_id`` was logged before is counted in ``duplicates`` and ignored, so a client may
    retry a batch safely."""
    limit = state.settings.max_batch_events
    if len(body.events) > limit:
        raise ApiError(422, ["body", "events"], f"at most {limit} events per batch, got "
                       f"{len(body.events)}", "too_long")
    now = int(time.time())
    records = [EventRecord(e.event_id, e.decision_id, e.kind,
                           now if e.timestamp is None else e.timestamp, e.watch_seconds)
               for e in body.events]
    try:
        result = await asyncio.wrap_future(state.store.submit_events(records))
    except UnknownDecisionError as exc:
        state.metrics.events.labels("rejected").inc(len(records))
        raise ApiError(422, ["body", "events", exc.index, "decision_id"], str(exc),
                       "unknown_decision") from None
    except (StoreClosedError, StoreWriteError) as exc:
        raise ApiError(503, [], f"events not logged: {exc}", "unavailable") from None
    state.metrics.events.labels("accepted").inc(result.accepted)
    state.metrics.events.labels("duplicate").inc(result.duplicates)
    return EventsOut(received=len(records), accepted=result.accepted,
                     duplicates=result.duplicates)
