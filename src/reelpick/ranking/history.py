r"""What the ranker knows: the title catalogue, a snapshot of viewing history, and requests.

:class:`Catalogue` holds title metadata as arrays (index = row of the titles table).
:class:`History` is every play before ``as_of`` (a time-respecting snapshot), with per-member
summaries computed once:

.. math::

    \mathrm{aff}_{m} = \frac{R_m}{1 + \sum_\gamma R_{m\gamma}}, \quad
    R_m = \sum_{\text{plays } (t, \tau)} f_{t\tau}\, 2^{-(\mathrm{as\_of} - \tau) / h}\,\bar g_t

(watch-fraction-weighted, time-decayed genre affinity, :math:`f` the fraction of the title
watched, :math:`\bar g_t` its genre vector divided by its genre count), the undecayed version,
days since the last play overall and per genre, and per-title play counts (all, trailing
week, and decayed per country x device x daypart for "trending").

:class:`Requests` are the visits to rank for: member index, time and context.

Example
-------
>>> import pandas as pd
>>> titles = pd.DataFrame({"title_id": ["t0", "t1"], "genres": ["drama", "comedy|drama"],
...                        "duration_seconds": [3600.0, 1800.0]})
>>> cat = Catalogue.from_frame(titles)
>>> inter = pd.DataFrame({"member_id": ["m0"], "title_id": ["t1"], "timestamp": [100],
...                       "watch_seconds": [900.0]})
>>> h = History.build(inter, cat, members=["m0", "m1"], as_of=101)
>>> h.affinity(decayed=False).round(3).tolist()
[[0.167, 0.167], [0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reelpick.data.schema import DEVICES, INTERACTIONS
from reelpick.data.vocab import Vocabulary

DAY = 86_400.0
#: Dayparts used by trending counts: night 0-5, morning 6-11, afternoon 12-17, evening 18-23.
N_DAYPARTS = 4


def daypart(hour: np.ndarray) -> np.ndarray:
    return np.asarray(hour) // 6


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Title metadata as arrays: ``genre_onehot (T, G)``, ``year``, ``release_ts``,
    ``duration`` (seconds), ``is_series``, ``popularity`` (observable level, 0 if unknown),
    ``available (n_countries, T)`` licences (all True if unknown), and the vocabularies."""

    titles: Vocabulary
    genres: tuple[str, ...]
    countries: tuple[str, ...]
    genre_onehot: np.ndarray
    year: np.ndarray
    release_ts: np.ndarray
    duration: np.ndarray
    is_series: np.ndarray
    popularity: np.ndarray
    available: np.ndarray

    @property
    def n_titles(self) -> int:
        return len(self.titles)

    @property
    def genre_mean(self) -> np.ndarray:
        return self.genre_onehot / np.maximum(self.genre_onehot.sum(axis=1, keepdims=True), 1)

    @classmethod
    def from_frame(cls, titles: pd.DataFrame, *, countries: Sequence[str] | None = None
                   ) -> Catalogue:
        """From a titles table (schema ``TITLES``; the world adds ``countries`` and
        ``popularity``)."""
        T = len(titles)
        g = titles["genres"].fillna("") if "genres" in titles else pd.Series([""] * T)
        lists = [str(x).split("|") if x else [] for x in g]
        genres = tuple(sorted({x for row in lists for x in row}))
        onehot = np.zeros((T, len(genres)))
        gi = {x: i for i, x in enumerate(genres)}
        for t, row in enumerate(lists):
            onehot[t, [gi[x] for x in row]] = 1.0

        def col(name: str, default: float) -> np.ndarray:
            if name in titles:
                return titles[name].fillna(default).to_numpy(dtype=np.float64)
            return np.full(T, default)

        if "countries" in titles:
            clists = [str(x).split("|") for x in titles["countries"]]
            ctry = tuple(countries or sorted({c for row in clists for c in row}))
            avail = np.zeros((len(ctry), T), dtype=bool)
            ci = {c: i for i, c in enumerate(ctry)}
            for t, row in enumerate(clists):
                avail[[ci[c] for c in row if c in ci], t] = True
        else:
            ctry = tuple(countries or ("",))
            avail = np.ones((len(ctry), T), dtype=bool)
        kind = titles["kind"].astype(str).to_numpy() if "kind" in titles else np.full(T, "film")
        return cls(Vocabulary(titles["title_id"]), genres, ctry, onehot, col("year", 2000.0),
                   col("release_ts", 0.0), col("duration_seconds", 3600.0), kind == "series",
                   col("popularity", 0.0), avail)


@dataclass(frozen=True, eq=False)
class Requests:
    """Visits to rank for, ``(n,)`` each: ``member`` (index into the history's members),
    ``timestamp``, ``device`` (index into ``DEVICES``), ``country`` (index into the
    catalogue's countries), ``hour`` (local), ``day_of_week`` (0 = Monday)."""

    member: np.ndarray
    timestamp: np.ndarray
    device: np.ndarray
    country: np.ndarray
    hour: np.ndarray
    day_of_week: np.ndarray

    def __len__(self) -> int:
        return len(self.member)

    @classmethod
    def from_visits(cls, visits: object) -> Requests:
        """From a :class:`~reelpick.world.VisitBatch` (or any object with the same arrays);
        member ``i`` of the world is ``m{i}``, so build the history with the world's member
        order."""
        return cls(*(np.asarray(getattr(visits, k)) for k in (
            "member", "timestamp", "device", "country", "hour", "day_of_week")))

    def subset(self, index: np.ndarray) -> Requests:
        return Requests(*(getattr(self, k)[index] for k in (
            "member", "timestamp", "device", "country", "hour", "day_of_week")))

    def context_frame(self, countries: Sequence[str]) -> pd.DataFrame:
        """The request context as schema columns (for models such as ``seq``)."""
        return pd.DataFrame({"device": np.asarray(DEVICES)[self.device],
                             "country": np.asarray(countries)[self.country],
                             "hour": self.hour.astype(np.int64),
                             "day_of_week": self.day_of_week.astype(np.int64)})


class History:
    """Plays before ``as_of`` and the summaries the sources and features need (module
    docstring). Build with :meth:`build`."""

    # set by build (annotations only: no class attributes, so hasattr(self, "_seen") holds)
    catalogue: Catalogue
    as_of: int
    half_life_days: float
    members: Vocabulary
    m: np.ndarray
    t: np.ndarray
    ts: np.ndarray
    frac: np.ndarray
    interactions: pd.DataFrame
    indptr: np.ndarray
    R_decayed: np.ndarray
    R_all: np.ndarray
    n_plays: np.ndarray
    last_ts: np.ndarray
    genre_last_ts: np.ndarray
    title_plays: np.ndarray
    title_plays_week: np.ndarray
    trending: np.ndarray
    trending_country: np.ndarray
    _seen: tuple[np.ndarray, np.ndarray, np.ndarray]

    def __init__(self) -> None:  # use History.build
        pass

    @classmethod
    def build(cls, interactions: pd.DataFrame, catalogue: Catalogue, *,
              members: Sequence[str] | None = None, as_of: int | None = None,
              half_life_days: float = 7.0, trending_half_life_days: float = 3.0) -> History:
        """Snapshot of ``interactions`` strictly before ``as_of`` (default: after the last).

        ``members`` fixes the member order (e.g. the world's ``m0..``); unknown members in the
        interactions are dropped. Titles not in the catalogue are dropped.
        """
        inter = INTERACTIONS.validate(interactions, source="History(interactions)")
        if as_of is None:
            as_of = int(inter["timestamp"].max()) + 1 if len(inter) else 0
        inter = inter[inter["timestamp"] < as_of]
        self = cls()
        self.catalogue, self.as_of = catalogue, int(as_of)
        self.half_life_days = float(half_life_days)
        self.members = Vocabulary(members if members is not None else inter["member_id"])
        m = self.members.index(inter["member_id"], missing="negative")
        t = catalogue.titles.index(inter["title_id"], missing="negative")
        keep = (m >= 0) & (t >= 0)
        ts = inter["timestamp"].to_numpy(dtype=np.int64)[keep]
        m, t = m[keep], t[keep]
        if "watch_seconds" in inter:
            ws = inter["watch_seconds"].to_numpy(dtype=np.float64)[keep]
            frac = np.clip(np.nan_to_num(ws / catalogue.duration[t], nan=1.0), 0.0, 1.0)
        else:
            frac = np.ones(t.size)
        order = np.lexsort((ts, m))
        self.m, self.t, self.ts, self.frac = m[order], t[order], ts[order], frac[order]
        self.interactions = inter[keep].iloc[order].reset_index(drop=True)
        M, T = len(self.members), catalogue.n_titles
        G = catalogue.genre_onehot.shape[1]
        self.indptr = np.searchsorted(self.m, np.arange(M + 1))
        age = (as_of - self.ts) / DAY
        gm = catalogue.genre_mean[self.t]
        decay = np.exp2(-age / half_life_days)
        self.R_decayed = np.zeros((M, G))
        np.add.at(self.R_decayed, self.m, gm * (self.frac * decay)[:, None])
        self.R_all = np.zeros((M, G))
        np.add.at(self.R_all, self.m, gm * self.frac[:, None])
        self.n_plays = np.bincount(self.m, minlength=M)
        self.last_ts = np.full(M, -np.inf)
        np.maximum.at(self.last_ts, self.m, self.ts.astype(float))
        self.genre_last_ts = np.full((M, G), -np.inf)
        r, g = np.nonzero(catalogue.genre_onehot[self.t] > 0)
        np.maximum.at(self.genre_last_ts, (self.m[r], g), self.ts[r].astype(float))
        self.title_plays = np.bincount(self.t, minlength=T).astype(float)
        week = age < 7
        self.title_plays_week = np.bincount(self.t[week], minlength=T).astype(float)
        # trending: decayed counts per (country, device, daypart)
        K = len(catalogue.countries)
        self.trending = np.zeros((K, len(DEVICES), N_DAYPARTS, T))
        if {"country", "device", "hour"} <= set(inter.columns) and t.size:
            sub = self.interactions
            ci = {c: i for i, c in enumerate(catalogue.countries)}
            k = sub["country"].map(ci).fillna(-1).to_numpy(dtype=np.int64)
            di = {d: i for i, d in enumerate(DEVICES)}
            d = sub["device"].map(di).fillna(-1).to_numpy(dtype=np.int64)
            p = daypart(sub["hour"].fillna(20).to_numpy(dtype=np.int64))
            ok = (k >= 0) & (d >= 0)
            w = np.exp2(-age / trending_half_life_days)
            np.add.at(self.trending, (k[ok], d[ok], p[ok], self.t[ok]), w[ok])
        self.trending_country = self.trending.sum(axis=(1, 2))
        return self

    # ------------------------------------------------------------------ summaries
    @property
    def n_members(self) -> int:
        return len(self.members)

    def affinity(self, *, decayed: bool = True, members: np.ndarray | None = None
                 ) -> np.ndarray:
        """Watch-weighted genre affinity ``(M, G)``, shrunk by one pseudo-play; only the rows
        of ``members (n,)`` (indices) when given, ``(n, G)``."""
        R = self.R_decayed if decayed else self.R_all
        if members is not None:
            R = R[np.asarray(members)]
        return R / (1.0 + R.sum(axis=1, keepdims=True))

    def member_plays(self, member: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(titles, timestamps, watch fractions)`` of one member, oldest first."""
        sl = slice(self.indptr[member], self.indptr[member + 1])
        return self.t[sl], self.ts[sl], self.frac[sl]

    def recent_titles(self, member: np.ndarray, k: int) -> np.ndarray:
        """``(n, k)`` each member's ``k`` most recent distinct titles, newest first (-1 pad)."""
        out = np.full((len(member), k), -1, dtype=np.int64)
        for i, mm in enumerate(np.asarray(member)):
            t = self.t[self.indptr[mm]:self.indptr[mm + 1]][::-1]
            _, first = np.unique(t, return_index=True)
            u = t[np.sort(first)][:k]
            out[i, : u.size] = u
        return out

    def _seen_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each (member, title) pair played: sorted keys ``member * T + title``, the time and
        watch fraction of its last play."""
        if not hasattr(self, "_seen"):
            T = self.catalogue.n_titles
            key = self.m * T + self.t
            order = np.lexsort((self.ts, key))
            key_s = key[order]
            last = np.r_[key_s[1:] != key_s[:-1], True] if key_s.size else key_s.astype(bool)
            self._seen = (key_s[last], self.ts[order][last].astype(float),
                          self.frac[order][last])
        return self._seen

    def last_play(self, member: np.ndarray, titles: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """For pairs ``member (p,)``, ``titles (p,)``: time of the member's last play of the
        title (``-inf`` if never) and its watch fraction (0 if never)."""
        keys, last, frac = self._seen_index()
        q = np.asarray(member) * self.catalogue.n_titles + np.asarray(titles)
        if keys.size == 0:
            return np.full(q.shape, -np.inf), np.zeros(q.shape)
        pos = np.minimum(np.searchsorted(keys, q), keys.size - 1)
        hit = keys[pos] == q
        return np.where(hit, last[pos], -np.inf), np.where(hit, frac[pos], 0.0)
