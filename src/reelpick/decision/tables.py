r"""Logged tables (impressions + outcomes + titles) as the arrays of the decision contract.

The service exports, ``reelpick simulate`` writes and a user's own logging produce the same
tables (:data:`reelpick.data.schema.IMPRESSIONS`, :data:`~reelpick.data.schema.OUTCOMES`,
:data:`~reelpick.data.schema.TITLES`); :func:`logged_pages` turns them into
:class:`LoggedPages`: one row per page (visit) with its observable context, and one row per
shown slot with the title, artwork, layout, the exact propensities and the play. Pages are what
a :class:`~reelpick.decision.Policy` returns for a :class:`~reelpick.decision.VisitBatch`, so
training, off-policy evaluation and the simulator all read one shape:

``page`` arrays ``(n,)``
    ``page_id``, ``member_id`` (external IDs), ``timestamp``, ``device`` (index into
    :data:`~reelpick.data.schema.DEVICES`), ``country`` (index into ``countries``), ``hour``,
    ``day_of_week``, ``cell`` (the randomised promotion cell, 0 when not logged), ``policy``,
    ``model_version``.
``slot`` arrays ``(m,)``
    ``visit`` (row of the page arrays), ``title`` (index into ``title_ids``), ``artwork``
    (variant within the title, ``-1`` when the artwork is unknown), ``row_index``,
    ``position``, ``slot = row_index * n_positions + position``, ``propensity`` = P(title in
    slot | visit), ``artwork_propensity`` = P(artwork | title shown) (1 when not logged),
    ``play`` (0/1) and ``watch_seconds``.

Example
-------
>>> import pandas as pd
>>> imp = pd.DataFrame({"decision_id": ["d0", "d1"], "page_id": ["p0", "p0"],
...     "timestamp": [10, 10], "member_id": ["ana", "ana"], "row": ["Top", "Top"],
...     "row_index": [0, 0], "position": [0, 1], "title_id": ["up", "coco"],
...     "policy": ["uniform", "uniform"], "propensity": [0.5, 0.5], "device": ["tv", "tv"],
...     "country": ["GB", "GB"], "hour": [20, 20], "day_of_week": [4, 4]})
>>> out = pd.DataFrame({"decision_id": ["d1"], "play": [1]})
>>> lp = logged_pages(imp, out, title_ids=["up", "coco", "heat"])
>>> lp.n_pages, lp.title.tolist(), lp.play.tolist(), lp.slot_matrix("play").tolist()
(1, [0, 1], [0, 1], [[0, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reelpick.data.schema import DEVICES, IMPRESSIONS, OUTCOMES, SchemaError, join_outcomes

__all__ = ["LoggedPages", "logged_pages"]

_SLOT = ("visit", "title", "artwork", "row_index", "position", "slot", "propensity",
         "artwork_propensity", "play", "watch_seconds")


@dataclass(frozen=True, eq=False)
class LoggedPages:
    """Logged pages and their shown slots (module docstring for the arrays)."""

    page_id: np.ndarray
    member_id: np.ndarray
    timestamp: np.ndarray
    device: np.ndarray
    country: np.ndarray
    hour: np.ndarray
    day_of_week: np.ndarray
    cell: np.ndarray
    policy: np.ndarray
    model_version: np.ndarray
    visit: np.ndarray
    title: np.ndarray
    artwork: np.ndarray
    row_index: np.ndarray
    position: np.ndarray
    slot: np.ndarray
    propensity: np.ndarray
    artwork_propensity: np.ndarray
    play: np.ndarray
    watch_seconds: np.ndarray
    row_label: np.ndarray
    title_ids: tuple[str, ...]
    countries: tuple[str, ...]
    n_rows: int
    n_positions: int

    @property
    def n_pages(self) -> int:
        return len(self.page_id)

    @property
    def n_slots(self) -> int:
        return self.n_rows * self.n_positions

    def __len__(self) -> int:
        return int(self.visit.size)

    def slot_matrix(self, name: str, fill: float | int = -1) -> np.ndarray:
        """``(n_pages, n_slots)`` of the slot array ``name`` (``fill`` where nothing was
        shown), e.g. ``slot_matrix("title")`` is the logged ``PageBatch.titles``."""
        src = getattr(self, name)
        out = np.full((self.n_pages, self.n_slots), fill, dtype=np.result_type(src, type(fill)))
        out[self.visit, self.slot] = src
        return out

    def take_pages(self, pages: np.ndarray) -> LoggedPages:
        """The pages at ``pages`` (sorted unique indices) and their slots, renumbered."""
        pages = np.unique(np.asarray(pages, dtype=np.int64))
        new = np.full(self.n_pages, -1, dtype=np.int64)
        new[pages] = np.arange(pages.size)
        keep = new[self.visit] >= 0
        per_page = {k: getattr(self, k)[pages] for k in (
            "page_id", "member_id", "timestamp", "device", "country", "hour", "day_of_week",
            "cell", "policy", "model_version")}
        per_slot = {k: getattr(self, k)[keep] for k in _SLOT + ("row_label",)}
        per_slot["visit"] = new[self.visit[keep]]
        return LoggedPages(**per_page, **per_slot, title_ids=self.title_ids,
                           countries=self.countries, n_rows=self.n_rows,
                           n_positions=self.n_positions)


def _codes(values: pd.Series, vocab: Sequence[str], column: str, source: str) -> np.ndarray:
    idx = pd.Index(list(vocab)).get_indexer(values.astype(str))
    if (idx < 0).any():
        i = int(np.flatnonzero(idx < 0)[0])
        raise SchemaError(f"unknown {column} {values.iloc[i]!r} (known: {list(vocab)[:8]}...)",
                          source=source, line=i + 2, column=column)
    return idx.astype(np.int64)


def logged_pages(impressions: pd.DataFrame, outcomes: pd.DataFrame | None = None, *,
                 title_ids: Sequence[str], countries: Sequence[str] | None = None,
                 artwork_offset: dict[str, tuple[int, int]] | None = None,
                 artwork_index: dict[str, int] | None = None, n_positions: int | None = None,
                 source: str = "impressions") -> LoggedPages:
    """:class:`LoggedPages` from an impressions table (and its outcomes, joined by
    ``decision_id``; without outcomes the impressions must carry ``play``).

    ``title_ids`` fixes the title indices (a title outside it raises :class:`SchemaError` with
    its line); ``countries`` the country indices (default: sorted logged countries).
    ``artwork_index`` (artwork ID -> global index) and ``artwork_offset`` (title ID ->
    ``(first global index, n_variants)``) turn ``artwork_id`` into the variant within its title;
    without them ``artwork`` is ``-1``. Pages are grouped by ``page_id`` (or ``decision_id``'s
    prefix before the last ``-`` when there is none) and ordered by time.
    """
    imp = IMPRESSIONS.validate(impressions, source=source)
    if outcomes is not None:
        imp = join_outcomes(imp, OUTCOMES.validate(outcomes, source="outcomes"),
                            source="outcomes")
    elif "play" not in imp.columns:
        raise SchemaError("no outcomes given and no 'play' column", source=source, line=1,
                          column="play")
    if "page_id" not in imp.columns:
        imp = imp.assign(page_id=imp["decision_id"].astype(str).str.rsplit("-", n=1).str[0])
    imp = imp.reset_index(drop=True)
    order = np.lexsort((imp["position"].to_numpy(), imp["row_index"].to_numpy(),
                        imp["timestamp"].to_numpy()))
    imp = imp.iloc[order].reset_index(drop=True)
    title = _codes(imp["title_id"], title_ids, "title_id", source)
    page_codes, first = np.unique(imp["page_id"].astype(str).to_numpy(), return_index=True)
    # pages in order of their first impression (time order)
    by_time = np.argsort(first, kind="stable")
    rank = np.empty_like(by_time)
    rank[by_time] = np.arange(by_time.size)
    visit = rank[np.searchsorted(page_codes, imp["page_id"].astype(str).to_numpy())]
    head = imp.iloc[np.sort(first)].reset_index(drop=True)
    ctry_vals = head["country"].astype(str) if "country" in head else pd.Series(
        [""] * len(head))
    ctry = tuple(countries) if countries is not None else tuple(sorted(set(ctry_vals)))
    dev = head["device"].astype(str) if "device" in head else pd.Series(["tv"] * len(head))

    def ints(col: str, default: int) -> np.ndarray:
        if col not in head:
            return np.full(len(head), default, dtype=np.int64)
        return head[col].fillna(default).to_numpy(dtype=np.int64)

    ts = head["timestamp"].to_numpy(dtype=np.int64)
    hour = ints("hour", -1)
    hour = np.where(hour < 0, ts // 3600 % 24, hour)
    dow = ints("day_of_week", -1)
    dow = np.where(dow < 0, (ts // 86_400 + 3) % 7, dow)
    cell_col = "experiment_cell" if "experiment_cell" in head else "cell"
    art = np.full(len(imp), -1, dtype=np.int64)
    if artwork_index is not None and artwork_offset is not None and "artwork_id" in imp:
        g = imp["artwork_id"].astype(str).map(artwork_index)
        lo = imp["title_id"].astype(str).map(lambda t: artwork_offset.get(t, (0, 0))[0])
        ok = g.notna().to_numpy()
        art[ok] = (g[ok].to_numpy(dtype=np.int64) - lo[ok].to_numpy(dtype=np.int64))
    position = imp["position"].to_numpy(dtype=np.int64)
    row_index = imp["row_index"].to_numpy(dtype=np.int64)
    P = int(n_positions) if n_positions is not None else int(position.max(initial=-1)) + 1
    if (position >= P).any():
        raise SchemaError(f"position {int(position.max())} >= n_positions {P}", source=source,
                          line=int(np.argmax(position >= P)) + 2, column="position")
    R = int(row_index.max(initial=-1)) + 1
    aprop = (imp["artwork_propensity"].fillna(1.0).to_numpy(dtype=float)
             if "artwork_propensity" in imp else np.ones(len(imp)))
    return LoggedPages(
        page_id=head["page_id"].astype(str).to_numpy(dtype=object),
        member_id=head["member_id"].astype(str).to_numpy(dtype=object),
        timestamp=ts, device=_codes(dev, DEVICES, "device", source),
        country=_codes(ctry_vals, ctry, "country", source), hour=hour, day_of_week=dow,
        cell=ints(cell_col, 0),
        policy=head["policy"].astype(str).to_numpy(dtype=object),
        model_version=(head["model_version"].fillna("").astype(str).to_numpy(dtype=object)
                       if "model_version" in head else np.full(len(head), "", dtype=object)),
        visit=visit.astype(np.int64), title=title, artwork=art, row_index=row_index,
        position=position, slot=row_index * P + position,
        propensity=imp["propensity"].to_numpy(dtype=float), artwork_propensity=aprop,
        play=imp["play"].to_numpy(dtype=np.int8),
        watch_seconds=(imp["watch_seconds"].fillna(0.0).to_numpy(dtype=float)
                       if "watch_seconds" in imp else np.zeros(len(imp))),
        row_label=imp["row"].astype(str).to_numpy(dtype=object),
        title_ids=tuple(str(t) for t in title_ids), countries=ctry, n_rows=max(R, 1),
        n_positions=max(P, 1))
