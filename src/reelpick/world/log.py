"""A simulation's logs: arrays while simulating, reelpick's schema tables on demand.

``SimulationLog`` keeps everything as arrays (fast) and builds the tables of
:mod:`reelpick.data.schema` on request, as pandas DataFrames (:meth:`SimulationLog.impressions`,
...) or straight to Parquet (:meth:`SimulationLog.write`). IDs: members ``m{i}``, titles ``t{i}``,
artworks ``t{i}-a{k}``, pages ``p{visit}`` and decisions ``p{visit}-{slot}``.

Extra (optional) columns beyond the schema: impressions ``artwork_propensity`` and
``experiment_cell`` (the instrument); interactions ``decision_id`` (null for organic plays found
without the page) and ``source`` (``page`` or ``organic``).
The hidden binge mood and the true probabilities are only in :meth:`SimulationLog.truth`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelpick.data.schema import DEVICES

_DEVICES = pa.array(DEVICES)


@dataclass(frozen=True, eq=False)
class VisitLog:
    """Per visit ``(n_visits,)``: member, timestamp, device, country, hour, day_of_week, cell,
    mood (hidden) and the organic title (``-1`` = none)."""

    member: np.ndarray
    timestamp: np.ndarray
    device: np.ndarray
    country: np.ndarray
    hour: np.ndarray
    day_of_week: np.ndarray
    cell: np.ndarray
    mood: np.ndarray
    organic: np.ndarray


@dataclass(frozen=True, eq=False)
class ImpressionLog:
    """Per shown slot ``(n_impressions,)``: ``visit`` (index into the visit log), ``slot``, row,
    position, title, global artwork index, propensities, the sampled ``play`` and
    ``watch_seconds``, and the truth: ``p_organic``, ``p_play`` = P(play | shown here) and
    ``uplift`` = ``p_play - p_organic`` (the causal effect of this impression)."""

    visit: np.ndarray
    slot: np.ndarray
    row_code: np.ndarray
    row_index: np.ndarray
    position: np.ndarray
    title: np.ndarray
    artwork: np.ndarray
    propensity: np.ndarray
    artwork_propensity: np.ndarray
    play: np.ndarray
    watch_seconds: np.ndarray
    p_organic: np.ndarray
    p_play: np.ndarray
    #: index into ``SimulationLog.sources`` of who made the page, ``-1`` when not recorded
    source_code: np.ndarray | None = None

    @property
    def uplift(self) -> np.ndarray:
        return self.p_play - self.p_organic

    def __len__(self) -> int:
        return len(self.visit)


@dataclass(frozen=True, eq=False)
class SimulationLog:
    """The result of :meth:`reelpick.world.World.simulate`.

    ``visits``, ``shown`` (impressions) and ``organic_plays`` (visit, title, watch_seconds of
    organic plays of titles not on the page) are arrays; the table methods build schema tables.
    """

    policy: str
    model_version: str
    visits: VisitLog
    shown: ImpressionLog
    organic_visit: np.ndarray
    organic_title: np.ndarray
    organic_watch: np.ndarray
    row_labels: tuple[str, ...]
    countries: tuple[str, ...]
    artwork_rank: np.ndarray  # global artwork index -> variant number within its title
    sources: tuple[str, ...] = ()  # page makers, e.g. the winning model's name

    @property
    def n_impressions(self) -> int:
        return len(self.shown)

    @property
    def n_visits(self) -> int:
        return len(self.visits.member)

    # ------------------------------------------------------------------ arrow tables
    def _ids(self, prefix: str, idx: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(prefix, pc.cast(pa.array(idx), pa.string()), "")

    def _context(self, visit: np.ndarray) -> dict[str, pa.Array]:
        v = self.visits
        return {
            "device": pc.take(_DEVICES, pa.array(v.device[visit])),
            "country": pc.take(pa.array(self.countries), pa.array(v.country[visit])),
            "hour": pa.array(v.hour[visit].astype(np.int64)),
            "day_of_week": pa.array(v.day_of_week[visit].astype(np.int64)),
        }

    def impressions_arrow(self) -> pa.Table:
        s, v = self.shown, self.visits
        page = self._ids("p", s.visit)
        n = len(s)
        decision = pc.binary_join_element_wise(page, pc.cast(pa.array(s.slot), pa.string()), "-")
        title = self._ids("t", s.title)
        art = pc.binary_join_element_wise(
            title, pc.cast(pa.array(self.artwork_rank[s.artwork]), pa.string()), "-a")
        cols = {
            "decision_id": decision,
            "timestamp": pa.array(v.timestamp[s.visit].astype(np.int64)),
            "member_id": self._ids("m", v.member[s.visit]),
            "row": pc.take(pa.array(self.row_labels, pa.string()), pa.array(s.row_code)),
            "row_index": pa.array(s.row_index.astype(np.int64)),
            "position": pa.array(s.position.astype(np.int64)),
            "title_id": title,
            "policy": pa.array(np.full(n, self.policy, dtype=object), pa.string()),
            "propensity": pa.array(s.propensity.astype(np.float64)),
            "page_id": page,
            "artwork_id": art,
            "model_version": pa.array(np.full(n, self.model_version, dtype=object), pa.string()),
            **self._context(s.visit),
            "artwork_propensity": pa.array(s.artwork_propensity.astype(np.float64)),
            "experiment_cell": pa.array(v.cell[s.visit].astype(np.int64)),
        }
        if s.source_code is not None and (s.source_code >= 0).any():
            code = pa.array(s.source_code, mask=s.source_code < 0)
            cols["page_source"] = pc.take(pa.array(self.sources, pa.string()), code)
        return pa.table(cols)

    def outcomes_arrow(self) -> pa.Table:
        s = self.shown
        page = self._ids("p", s.visit)
        return pa.table({
            "decision_id": pc.binary_join_element_wise(
                page, pc.cast(pa.array(s.slot), pa.string()), "-"),
            "play": pa.array(s.play.astype(np.int64)),
            "timestamp": pa.array(self._play_ts(s.visit, s.slot)),
            "watch_seconds": pa.array(s.watch_seconds.astype(np.float64)),
        })

    def _play_ts(self, visit: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """Plays from the page start 60 s + 10 s per slot after the visit; organic ones 30 s."""
        return self.visits.timestamp[visit].astype(np.int64) + 60 + 10 * slot.astype(np.int64)

    def interactions_arrow(self) -> pa.Table:
        s, v = self.shown, self.visits
        hit = np.flatnonzero(s.play)
        visit = np.concatenate([s.visit[hit], self.organic_visit])
        title = np.concatenate([s.title[hit], self.organic_title])
        ts = np.concatenate([self._play_ts(s.visit[hit], s.slot[hit]),
                             v.timestamp[self.organic_visit].astype(np.int64) + 30])
        watch = np.concatenate([s.watch_seconds[hit], self.organic_watch])
        order = np.lexsort((title, ts))
        visit, title, ts, watch = visit[order], title[order], ts[order], watch[order]
        from_page = np.concatenate([np.ones(hit.size, bool),
                                    np.zeros(self.organic_visit.size, bool)])[order]
        dec_all = np.concatenate([s.slot[hit], np.zeros(self.organic_visit.size, np.int64)])[
            order]
        dec = pc.binary_join_element_wise(self._ids("p", visit),
                                          pc.cast(pa.array(dec_all), pa.string()), "-")
        dec = pc.if_else(pa.array(from_page), dec, pa.nulls(len(visit), pa.string()))
        return pa.table({
            "member_id": self._ids("m", v.member[visit]),
            "title_id": self._ids("t", title),
            "timestamp": pa.array(ts),
            "watch_seconds": pa.array(watch.astype(np.float64)),
            **self._context(visit),
            "decision_id": dec,
            "source": pc.if_else(pa.array(from_page), "page", "organic"),
        })

    def truth_arrow(self) -> pa.Table:
        """Hidden truth per impression: mood, P(organic), P(play | shown here), uplift."""
        s, v = self.shown, self.visits
        page = self._ids("p", s.visit)
        return pa.table({
            "decision_id": pc.binary_join_element_wise(
                page, pc.cast(pa.array(s.slot), pa.string()), "-"),
            "mood": pa.array(v.mood[s.visit].astype(np.int64)),
            "p_organic": pa.array(s.p_organic),
            "p_play": pa.array(s.p_play),
            "uplift": pa.array(s.uplift),
        })

    # ------------------------------------------------------------------ pandas
    def impressions(self) -> pd.DataFrame:
        """Impressions table (schema ``IMPRESSIONS``, plus ``artwork_propensity``,
        ``experiment_cell``)."""
        return self.impressions_arrow().to_pandas()

    def outcomes(self) -> pd.DataFrame:
        """Outcomes table (schema ``OUTCOMES``), one row per impression."""
        return self.outcomes_arrow().to_pandas()

    def interactions(self) -> pd.DataFrame:
        """Every play, from the page or organic (schema ``INTERACTIONS``), time-ordered."""
        return self.interactions_arrow().to_pandas()

    def truth(self) -> pd.DataFrame:
        return self.truth_arrow().to_pandas()

    def write(self, out: str | Path, *, truth: bool = False) -> dict[str, Path]:
        """Write impressions, outcomes and interactions (and ``truth`` if asked) as Parquet."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tables = {"impressions": self.impressions_arrow, "outcomes": self.outcomes_arrow,
                  "interactions": self.interactions_arrow}
        if truth:
            tables["truth"] = self.truth_arrow
        paths = {}
        for name, make in tables.items():
            paths[name] = out / f"{name}.parquet"
            pq.write_table(make(), paths[name])
        return paths
