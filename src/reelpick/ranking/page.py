r"""Page composition: candidates from every source, scored by the ranker, laid out in rows.

For each request:

1. **Candidates**: the union of each source's ``per_source`` best titles (and, for genre rows,
   the most-played titles of the member's top genres), restricted to titles available to the
   request.
2. **Scores**: :math:`\hat p_t` = ranker p(play | member, title, context) at the top slot.
3. **Rows** (kinds in ``PageConfig.rows``): *Continue watching* (by recency), *Top picks* (all
   candidates by :math:`\hat p`), *Because you watched X* (neighbours of each recent title X,
   by :math:`\hat p`), *Trending now* (the ``3P`` most trending in the member's country and
   context, by :math:`\hat p`), and *genre rows* for the member's top genres (by affinity).
4. **Row order per member and context**: rows are sorted by their value
   :math:`V = \sum_{j<P} \lambda^j \hat p_{(j)}` (the examination-weighted predicted plays of
   their first ``P`` titles, :math:`\lambda` = ``position_decay``); since :math:`\hat p` depends
   on device, hour and weekday, the same member gets a different page on a phone at 8am and on
   a TV at 9pm (Baltrunas et al., RecSys 2011). ``order_rows="fixed"`` keeps the listed order.
5. **No title twice**: rows are filled in order, each skipping titles already placed; every slot
   records its row, position and label.

Example
-------
>>> cfg = PageConfig(n_rows=2, n_positions=3)
>>> cfg.n_slots
6
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reelpick.ranking.features import FeatureBuilder
from reelpick.ranking.history import History, Requests
from reelpick.ranking.ranker import Ranker
from reelpick.ranking.sources import BecauseYouWatchedSource, CandidateSource

ROW_KINDS = ("continue", "top", "because", "trending", "genre")


@dataclass(frozen=True)
class PageConfig:
    """Page shape and rows: ``n_rows`` x ``n_positions``; ``rows`` the row kinds offered (from
    :data:`ROW_KINDS`); ``n_genre_rows``; ``per_source`` candidates kept per source;
    ``order_rows`` ``"value"`` (per member and context) or ``"fixed"``; ``position_decay``
    :math:`\\lambda` of the row value."""

    n_rows: int = 5
    n_positions: int = 10
    rows: tuple[str, ...] = ROW_KINDS
    n_genre_rows: int = 3
    per_source: int = 100
    order_rows: str = "value"
    position_decay: float = 0.85

    def __post_init__(self) -> None:
        if self.n_rows < 1 or self.n_positions < 1:
            raise ValueError(f"n_rows, n_positions: must be >= 1, got {self.n_rows}, "
                             f"{self.n_positions}")
        bad = sorted(set(self.rows) - set(ROW_KINDS))
        if bad or not self.rows:
            raise ValueError(f"rows: unknown kind(s) {bad}; use some of {ROW_KINDS}")
        if self.n_genre_rows < 0 or self.per_source < 1:
            raise ValueError("n_genre_rows must be >= 0 and per_source >= 1")
        if self.order_rows not in ("value", "fixed"):
            raise ValueError(f"order_rows: use 'value' or 'fixed', got {self.order_rows!r}")
        if not 0 < self.position_decay <= 1:
            raise ValueError(f"position_decay: must be in (0, 1], got {self.position_decay!r}")

    @property
    def n_slots(self) -> int:
        return self.n_rows * self.n_positions


@dataclass(frozen=True, eq=False)
class ComposedPages:
    """Pages for ``n`` requests, ``S = n_rows * n_positions`` slots each: ``titles (n, S)``
    (-1 = empty), ``row_index``/``position (n, S)``, ``slot_label (n, S)``, ``row_label (n,
    n_rows)``, ``row_kind (n, n_rows)``, ``score (n, S)`` the predicted p(play) (NaN = empty)."""

    titles: np.ndarray
    row_index: np.ndarray
    position: np.ndarray
    slot_label: np.ndarray
    row_label: np.ndarray
    row_kind: np.ndarray
    score: np.ndarray


class PageComposer:
    """Sources + features + ranker -> ranked, row-structured pages (module docstring).

    ``history`` and ``sources`` must be fitted on the same snapshot; ``ranker`` trained on
    features from ``features``. ``title_names`` (optional) label "Because you watched X".
    """

    def __init__(self, history: History, sources: Sequence[CandidateSource],
                 features: FeatureBuilder, ranker: Ranker, config: PageConfig | None = None,
                 *, title_names: Sequence[str] | None = None) -> None:
        self.history, self.sources = history, list(sources)
        self.features, self.ranker = features, ranker
        self.config = config or PageConfig()
        if list(ranker.feature_names_) != features.names:
            raise ValueError("ranker: trained on other features than the feature builder's")
        cat = history.catalogue
        self.title_names = (np.asarray(title_names, dtype=object) if title_names is not None
                            else cat.titles.id_array)
        self._byw = next((s for s in self.sources if isinstance(s, BecauseYouWatchedSource)),
                         None)
        # per genre, titles by recent plays then observable popularity (genre-row candidates)
        key = np.log1p(history.title_plays_week) + 1e-3 * cat.popularity
        self._genre_top = [np.flatnonzero(cat.genre_onehot[:, g] > 0)[
            np.argsort(-key[cat.genre_onehot[:, g] > 0], kind="stable")]
            for g in range(len(cat.genres))]

    # ------------------------------------------------------------------ steps
    def source_scores(self, requests: Requests) -> dict[str, np.ndarray]:
        return {s.name: s.score(requests) for s in self.sources}

    def default_available(self, requests: Requests) -> np.ndarray:
        """Licensed in the request's country and released before the request, ``(n, T)``."""
        cat = self.history.catalogue
        return (cat.available[requests.country]
                & (cat.release_ts[None, :] <= requests.timestamp[:, None]))

    def candidates(self, requests: Requests, available: np.ndarray,
                   scores: dict[str, np.ndarray], genres: np.ndarray | None = None
                   ) -> np.ndarray:
        """``(n, T)`` bool: union of each source's ``per_source`` best available titles plus
        genre-row titles (of ``genres (n, n_genre_rows)``, the members' top genres, computed
        when not given)."""
        k = self.config.per_source
        n, T = available.shape
        cand = np.zeros((n, T), dtype=bool)
        rows = np.arange(n)[:, None]
        for s in scores.values():
            key = np.where(available & np.isfinite(s), s, -np.inf)
            kk = min(k, T)
            top = np.argpartition(-key, kk - 1, axis=1)[:, :kk] if kk < T else np.tile(
                np.arange(T), (n, 1))
            cand[rows, top] |= np.isfinite(key[rows, top])
        if "genre" in self.config.rows and self.config.n_genre_rows:
            for i, g in enumerate(self._top_genres(requests) if genres is None else genres):
                for gg in g:
                    lst = self._genre_top[gg]
                    lst = lst[available[i, lst]][: 2 * self.config.n_positions]
                    cand[i, lst] = True
        return cand

    def _top_genres(self, requests: Requests) -> np.ndarray:
        h, m = self.history, requests.member
        aff = h.affinity(decayed=True, members=m) + 1e-9 * h.affinity(decayed=False, members=m)
        return np.argsort(-aff, axis=1, kind="stable")[:, : self.config.n_genre_rows]

    def predict(self, requests: Requests, candidate: np.ndarray,
                scores: dict[str, np.ndarray]) -> np.ndarray:
        """``(n, T)`` predicted p(play) at the top slot for candidates, NaN elsewhere."""
        r, t = np.nonzero(candidate)
        p = np.full(candidate.shape, np.nan)
        if r.size:
            p[r, t] = self.ranker.predict(self.features.build(requests, r, t, scores))
        return p

    # ------------------------------------------------------------------ composition
    def compose(self, requests: Requests, available: np.ndarray | None = None
                ) -> ComposedPages:
        """Pages for ``requests``; ``available (n, T)`` defaults to :meth:`default_available`."""
        cfg = self.config
        avail = self.default_available(requests) if available is None else np.asarray(available)
        scores = self.source_scores(requests)
        genres = self._top_genres(requests) if "genre" in cfg.rows else None
        cand = self.candidates(requests, avail, scores, genres)
        p = self.predict(requests, cand, scores)
        n, R, P = len(requests), cfg.n_rows, cfg.n_positions
        titles = np.full((n, R * P), -1, dtype=np.int64)
        slot_label = np.full((n, R * P), "", dtype=object)
        row_label = np.full((n, R), "", dtype=object)
        row_kind = np.full((n, R), "", dtype=object)
        score = np.full((n, R * P), np.nan)
        anchors, by_anchor = (self._byw.anchor_scores(requests) if self._byw is not None
                              and "because" in cfg.rows else (None, None))
        decay = cfg.position_decay ** np.arange(P)
        cat = self.history.catalogue
        for i in range(n):
            pi = p[i]
            ok = np.isfinite(pi)
            rows: list[tuple[str, str, np.ndarray]] = []
            for kind in cfg.rows:
                if kind == "continue" and "continue" in scores:
                    s = scores["continue"][i]
                    idx = np.flatnonzero(np.isfinite(s) & avail[i])
                    rows.append((kind, "Continue watching", idx[np.argsort(-s[idx],
                                                                           kind="stable")]))
                elif kind == "top":
                    idx = np.flatnonzero(ok)
                    rows.append((kind, "Top picks", idx[np.argsort(-pi[idx], kind="stable")]))
                elif kind == "because" and anchors is not None and by_anchor is not None:
                    for a, sa in zip(anchors[i], by_anchor[i]):
                        if a < 0:
                            continue
                        idx = np.flatnonzero(np.isfinite(sa) & ok)
                        rows.append((kind, f"Because you watched {self.title_names[a]}",
                                     idx[np.argsort(-pi[idx], kind="stable")]))
                elif kind == "trending" and "trending" in scores:
                    s = np.where(ok, scores["trending"][i], -np.inf)
                    idx = np.argsort(-s, kind="stable")[: 3 * P]
                    idx = idx[np.isfinite(s[idx])]
                    rows.append((kind, "Trending now", idx[np.argsort(-pi[idx], kind="stable")]))
                elif kind == "genre" and genres is not None:
                    for g in genres[i]:
                        idx = np.flatnonzero(ok & (cat.genre_onehot[:, g] > 0))
                        rows.append((kind, cat.genres[g].capitalize(),
                                     idx[np.argsort(-pi[idx], kind="stable")]))
            rows = [r for r in rows if r[2].size]
            if cfg.order_rows == "value":
                val = [float((decay[: r[2][:P].size] * pi[r[2][:P]]).sum())
                       if r[0] != "continue" else float(
                           (decay[: r[2][:P].size] * np.nan_to_num(pi[r[2][:P]], nan=0.0)).sum())
                       for r in rows]
                rows = [rows[j] for j in np.argsort(-np.asarray(val), kind="stable")]
            used = np.zeros(cat.n_titles, dtype=bool)
            ri = 0
            for kind, label, idx in rows:
                if ri >= R:
                    break
                idx = idx[~used[idx]][:P]
                if idx.size == 0:
                    continue
                used[idx] = True
                sl = slice(ri * P, ri * P + idx.size)
                titles[i, sl] = idx
                slot_label[i, sl] = label
                score[i, sl] = pi[idx]
                row_label[i, ri], row_kind[i, ri] = label, kind
                ri += 1
        s = np.arange(R * P)
        return ComposedPages(titles, np.broadcast_to(s // P, (n, R * P)),
                             np.broadcast_to(s % P, (n, R * P)), slot_label, row_label,
                             row_kind, score)

    def explain(self, requests: Requests, i: int, title: int, top: int = 5):
        """Why title ``title`` for request ``i``: the signals that pushed it up (TreeSHAP)."""
        sub = requests.subset(np.array([i]))
        scores = self.source_scores(sub)
        x = self.features.build(sub, np.array([0]), np.array([title]), scores)
        return self.ranker.why(x, top=top)

