"""The world, one day at a time: each arm of the loop keeps its own member state.

:meth:`reelpick.world.World.simulate` runs one policy over the whole horizon; the loop must
change policy between days (retrain, ship). :class:`DaySimulator` runs the same equations as
``World.simulate`` (same batches, same organic draws, same state updates) one UTC day at a time
and keeps the member state between calls. Arms built with the same seed see the same visits and
the same outcome random numbers (common random numbers), so their differences are the policies'.

The truth of a page comes from the world (:func:`page_truth`): per visit, expected plays
``search + sum_s uplift_s`` (organic search plus plays caused by the page), page plays
``sum_s P(play | shown in s)`` and incremental plays ``sum_s uplift_s``.

Example
-------
>>> from reelpick.policies import UniformPolicy
>>> from reelpick.world import World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> sim = DaySimulator(world, visits_per_day=100, days=2, seed=0)
>>> day0 = sim.run_day(UniformPolicy(), 0)
>>> day0.log.n_impressions == day0.log.n_visits * world.config.n_slots
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from reelpick.decision import Policy
from reelpick.world import MemberState, SimulationLog, VisitBatch, World, WorldVisits
from reelpick.world.log import ImpressionLog, VisitLog

DAY = 86_400
_VISIT_KEYS = ("member", "timestamp", "device", "country", "hour", "day_of_week", "cell", "mood")


@dataclass(frozen=True, eq=False)
class DayLog:
    """One day of one arm: the world log (visit indices local to the day), the page ``source``
    per visit (``"explore"`` for the uniform bucket, else the policy's name) and the day."""

    day: int
    log: SimulationLog
    source: np.ndarray
    records: dict[str, np.ndarray] | None = None

    @property
    def explored(self) -> np.ndarray:
        """Visits served a uniformly random page."""
        return self.source == "explore"

    @property
    def pooled(self) -> np.ndarray:
        """Visits served a randomly drawn candidate's page (the candidate-pool share)."""
        return np.array([str(x).startswith("pool:") for x in self.source], dtype=bool)


def draw_day_visits(world: World, day: int, n: int, rng: np.random.Generator
                    ) -> dict[str, np.ndarray]:
    """About ``n`` visits on UTC day ``day``, drawn as :meth:`World.draw_visits` draws them
    (member, context, mood, cell), time-sorted."""
    cfg = world.config
    v = world.draw_visits(max(1, n * cfg.days), rng)
    d = np.floor_divide(v["timestamp"] - cfg.start, DAY)
    keep = np.flatnonzero(d == day)
    return {k: a[keep] for k, a in v.items()}


def visit_batches(world: World, visits: dict[str, np.ndarray]
                  ) -> Iterator[tuple[slice, VisitBatch]]:
    """:meth:`World.batches` (one day, at most ``batch_size`` visits per batch)."""
    return world.batches(visits)


class DaySimulator:
    """A world stepped one UTC day at a time with a persistent member state.

    Visits for days ``0..days-1`` are drawn once from ``[seed, 101]``; pages from ``[seed, 102]``
    and outcomes from ``[seed, 103]`` (one stream per simulator, continued day after day).
    """

    def __init__(self, world: World, *, visits_per_day: int, days: int, seed: int) -> None:
        self.world, self.days, self.seed = world, int(days), int(seed)
        cfg = world.config
        v = world.draw_visits(visits_per_day * cfg.days, np.random.default_rng([seed, 101]))
        d = np.floor_divide(v["timestamp"] - cfg.start, DAY)
        self._day = d
        self._visits = v
        self.state: MemberState = world.initial_state()
        self._prng = np.random.default_rng([seed, 102])
        self._orng = np.random.default_rng([seed, 103])

    def visits(self, day: int) -> dict[str, np.ndarray]:
        keep = np.flatnonzero(self._day == day)
        return {k: a[keep] for k, a in self._visits.items()}

    def run_day(self, policy: Policy, day: int) -> DayLog:
        """Serve ``policy`` to the visits of ``day``; plays update the member state."""
        if not 0 <= day < self.days:
            raise ValueError(f"day: must lie in 0..{self.days - 1}, got {day}")
        log, source = simulate_visits(self.world, policy, self.visits(day), self.state,
                                      self._prng, self._orng, commit=True)
        records = None
        if hasattr(policy, "take_records"):
            records = policy.take_records()
            if not np.array_equal(records["member"], log.visits.member):
                raise RuntimeError("policy records are not in the log's visit order")
        return DayLog(day, log, source, records)


def simulate_visits(world: World, policy: Policy, visits: dict[str, np.ndarray],
                    state: MemberState, prng: np.random.Generator, orng: np.random.Generator,
                    *, commit: bool = True) -> tuple[SimulationLog, np.ndarray]:
    """``World.simulate``'s loop over given visits (one day) with a given member state.

    ``commit=False`` leaves ``state`` untouched (what-if runs, A/B arms on fresh visits).
    Returns the log and the page ``source`` per visit."""
    if len(visits["member"]) == 0:
        raise ValueError("visits: no visits on this day (raise visits_per_day)")
    log = world.simulate_visits(policy, visits, state, prng, orng, commit=commit)
    source = np.full(log.n_visits, str(policy.name), dtype=object)
    code = log.shown.source_code
    if code is not None and (code >= 0).any():
        known = code >= 0
        source[log.shown.visit[known]] = np.asarray(log.sources, dtype=object)[code[known]]
    return log, source


def concat_logs(logs: Sequence[SimulationLog]) -> SimulationLog:
    """One log from several (visit indices shifted, row labels and page makers merged), in the
    given order."""
    if not logs:
        raise ValueError("logs: nothing to concatenate")
    labels: dict[str, int] = {}
    sources: dict[str, int] = {}
    shown, visits = [], []
    ov, ot, ow = [], [], []
    offset = 0
    for lg in logs:
        remap = np.array([labels.setdefault(lb, len(labels)) for lb in lg.row_labels] or [0])
        s = lg.shown
        d = {f: getattr(s, f) for f in s.__dataclass_fields__}
        d["visit"] = s.visit + offset
        d["row_code"] = remap[s.row_code]
        if s.source_code is not None:
            smap = np.array([sources.setdefault(x, len(sources)) for x in lg.sources] + [-1])
            d["source_code"] = smap[s.source_code]  # -1 (not recorded) stays -1
        shown.append(d)
        visits.append(lg.visits)
        ov.append(lg.organic_visit + offset)
        ot.append(lg.organic_title)
        ow.append(lg.organic_watch)
        offset += lg.n_visits
    first = logs[0]
    vfields = VisitLog.__dataclass_fields__
    columns: dict[str, Any] = {f: _cat([d[f] for d in shown]) for f in shown[0]}
    return SimulationLog(
        policy=first.policy, model_version=first.model_version,
        visits=VisitLog(**{f: np.concatenate([getattr(v, f) for v in visits]) for f in vfields}),
        shown=ImpressionLog(**columns),
        organic_visit=np.concatenate(ov), organic_title=np.concatenate(ot),
        organic_watch=np.concatenate(ow), row_labels=tuple(labels), countries=first.countries,
        artwork_rank=first.artwork_rank, sources=tuple(sources))


def _cat(parts: list) -> np.ndarray | None:
    """Concatenate a field; optional fields (``None`` in some log) are dropped."""
    if any(p is None for p in parts):
        return None
    return np.concatenate(parts)


@dataclass(frozen=True, eq=False)
class PageTruth:
    """Per visit ``(n,)``: expected ``plays`` (organic search + caused by the page),
    ``page_plays`` (plays of titles on the page, organic ones included: what a logged play rate
    measures) and ``incremental`` (plays caused by the page); ``titles (n, S)`` the pages."""

    plays: np.ndarray
    page_plays: np.ndarray
    incremental: np.ndarray
    titles: np.ndarray


def page_truth(world: World, policy: Policy, batches: Sequence[VisitBatch], state: MemberState,
               rng: np.random.Generator, *, artwork: str = "uniform") -> PageTruth:
    """The world's truth for ``policy``'s pages on ``batches`` with member state ``state``.

    ``artwork="uniform"`` averages over each title's images (a uniformly random image, as
    logged by the exploring policy); ``"page"`` uses the images the policy chose."""
    if artwork not in ("uniform", "page"):
        raise ValueError(f"artwork: use 'uniform' or 'page', got {artwork!r}")
    cfg = world.config
    out: dict[str, list[np.ndarray]] = {"plays": [], "page": [], "inc": [], "titles": []}
    for vb in batches:
        page = policy.choose(vb, rng)
        titles = page.titles
        shown = titles >= 0
        art = page.artworks if artwork == "page" else None
        kw: dict[str, Any] = dict(row=page.row_index, position=page.position, state=state)
        up = np.where(shown, world.uplift(vb, titles, art, **kw), 0.0)
        p0 = np.where(shown, world.organic_probability(vb, np.where(shown, titles, 0), state),
                      0.0)
        mood = cast(WorldVisits, vb).mood  # the world's batches carry the hidden mood
        search = np.where(np.asarray(mood) > 0, cfg.mood_search_rate, cfg.search_rate)
        inc = up.sum(axis=1)
        out["plays"].append(search + inc)
        out["page"].append((p0 + up).sum(axis=1))
        out["inc"].append(inc)
        out["titles"].append(titles)
    return PageTruth(*(np.concatenate(out[k]) for k in ("plays", "page", "inc", "titles")))


def truth_of_log(world: World, log: SimulationLog) -> dict[str, np.ndarray]:
    """Per visit of a log: expected plays, page plays and incremental plays of the pages that
    were actually shown (from the logged truth ``p_play``/``p_organic``)."""
    cfg = world.config
    n = log.n_visits
    s = log.shown
    inc = np.bincount(s.visit, weights=s.uplift, minlength=n)
    page = np.bincount(s.visit, weights=s.p_play, minlength=n)
    search = np.where(log.visits.mood > 0, cfg.mood_search_rate, cfg.search_rate)
    return {"plays": search + inc, "page_plays": page, "incremental": inc}
