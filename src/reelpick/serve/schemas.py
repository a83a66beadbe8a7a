"""Request and response schemas of the HTTP API (requests forbid unknown fields)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from reelpick.data.schema import DEVICES

#: Hard cap on a batch; ``Settings.max_batch_events`` may lower it.
MAX_BATCH = 100_000
_ID = r"^[A-Za-z0-9_.:@-]+$"
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=_ID)]
Device = Literal[DEVICES]  # type: ignore[valid-type]
#: A page's context, as ``GET /v1/homepage`` and ``POST /v1/admin/precompute`` take it
Country = Annotated[str | None, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z]+$")]
Hour = Annotated[int | None, Field(ge=0, le=23)]
DayOfWeek = Annotated[int | None, Field(ge=0, le=6)]
#: Unix seconds
At = Annotated[int | None, Field(ge=0, le=2**40)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# ---------------------------------------------------------------- homepage
class HomepageQuery(BaseModel):
    """Query of ``GET /v1/homepage``. Missing ``hour``/``day_of_week`` default to the current UTC
    time; a missing ``country`` to the member's (or the catalogue's first for unknown members)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    member: Id
    device: Device = "web"
    country: Country = None
    hour: Hour = None
    day_of_week: DayOfWeek = None
    #: the time the page is for (Unix seconds; default: now): replays and simulations ask
    #: for the page of a given moment (titles released by then, the time logged)
    at: At = None


class ContextOut(_Response):
    device: str
    country: str
    hour: int
    day_of_week: int
    timestamp: int


class SlotOut(_Response):
    decision_id: str = Field(description="Key of every event about this slot.")
    title_id: str
    name: str
    row: str
    row_index: int
    position: int
    propensity: float = Field(description="P(this title in this slot | member, context).")
    artwork_id: str
    artwork_url: str
    artwork_propensity: float = Field(description="P(this artwork | title shown).")
    score: float | None = Field(description="The ranking score (for the explain view; null "
                                "when the policy reports none).")
    explored: bool = Field(description="Filled by exploration rather than by the ranking.")


class RowOut(_Response):
    row_index: int
    label: str
    reason: str
    items: list[SlotOut]


class HomepageOut(_Response):
    page_id: str
    member: str
    cold_start: bool
    policy: str
    model_version: str
    context: ContextOut
    rows: list[RowOut]


# ---------------------------------------------------------------- events
class EventIn(_Request):
    """One client event about one slot of a served page.

    ``impression``: the slot was actually on screen; ``play``: the member started the title;
    ``watch``: ``watch_seconds`` more seconds were watched (summed per decision on export).
    """

    event_id: Id = Field(description="Client-chosen unique id; a repeated id is ignored.")
    decision_id: Id
    kind: Literal["impression", "play", "watch"]
    timestamp: Annotated[int | None, Field(ge=0, le=2**40)] = None
    watch_seconds: Annotated[float, Field(ge=0.0, le=7 * 86_400.0, allow_inf_nan=False)] = 0.0

    @field_validator("watch_seconds")
    @classmethod
    def _no_seconds_on_impressions(cls, v: float, info: ValidationInfo) -> float:
        if v and info.data.get("kind") == "impression":
            raise ValueError("must be 0 for an impression event")
        return v


class EventsIn(_Request):
    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


class EventsOut(_Response):
    received: int
    accepted: int = Field(description="New events, now durable.")
    duplicates: int = Field(description="Events whose event_id was already logged (ignored).")


# ---------------------------------------------------------------- titles, options, admin
class ArtworkOut(_Response):
    artwork_id: str
    theme: str
    url: str


class TitleOut(_Response):
    title_id: str
    name: str
    genres: list[str]
    kind: str | None
    year: int | None
    duration_seconds: float | None
    countries: list[str]
    artworks: list[ArtworkOut]


class OptionsOut(_Response):
    devices: list[str]
    countries: list[str]
    members: list[str]
    model_version: str
    policy: str


class ReloadOut(_Response):
    model_version: str
    previous_version: str
    seconds: float


class PrecomputeIn(_Request):
    """Body of ``POST /v1/admin/precompute``: members whose pages to compose ahead, in one
    context. ``country``, ``hour`` and ``day_of_week`` default as in ``GET /v1/homepage``;
    ``at`` (Unix seconds, default now) picks the hour the pages are for."""

    members: Annotated[list[Id], Field(min_length=1, max_length=MAX_BATCH)]
    device: Device = "web"
    country: Country = None
    hour: Hour = None
    day_of_week: DayOfWeek = None
    at: At = None


class PrecomputeOut(_Response):
    pages: int = Field(description="Pages asked for.")
    composed: int = Field(description="Pages composed now (the others were remembered).")
    cached: int = Field(description="Pages the policy remembers after this call.")
    pruned: int = Field(0, description="Pages of past hours deleted from the page store "
                                       "first (they are never served again).")
    seconds: float
    model_version: str


class LogHealth(_Response):
    alive: bool
    integrity: str
    queue_depth: int


class HealthOut(_Response):
    status: Literal["ok", "degraded"]
    model_version: str
    log: LogHealth


class ErrorItem(_Response):
    field: str | None = Field(description="The offending field, e.g. 'events[3].kind'.")
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(_Response):
    detail: list[ErrorItem]
