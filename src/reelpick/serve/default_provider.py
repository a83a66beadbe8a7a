r"""The default home page: ALS candidates blended with context popularity, rows by genre,
epsilon-greedy exploration with exact per-slot propensities.

Scores (``T`` titles, computed per request, one thread):

* personal :math:`p_t = z(x_u^\top y_t)` — ALS member factors times title factors, standardised
  over the catalogue (0 for an unknown member: the cold-start page);
* context :math:`c_t = z(\log \hat P(t \mid d, b) + \log \hat P(t \mid k) - \log \hat P(t))` from
  play counts by device ``d`` x hour bucket ``b`` and by country ``k`` (additively smoothed);
* blend :math:`s_t = p_t + w\,c_t` (``w`` = ``context_weight``).

Rows: "Top picks for you" (blend; "Popular in K now" when cold), "Popular on D around H:00"
(context), then one row per genre in order of the member's affinity (the genre mass of the top
blend titles), and "More for you" when genres run out. Titles already played by the member, not
licensed in the country, or not yet released are never shown; a title appears once per page.
Exploration: every slot explores with probability ``epsilon``, exploring slots taking distinct
titles uniformly from the pool of all other eligible titles (the formula of
:func:`reelpick.serve.exploration.explore`, vectorised over the slots of several pages).
Artwork: uniform over the title's variants (``artwork="random"``, propensity
``1 / n_variants``) or its first variant (``"first"``, propensity 1).

The greedy page is a deterministic function of (member, country, device, hour, release window)
and the model, so it is cached per such key (least recently used out first, ``page_cache``
entries of ~3.5 kB); only exploration and artwork are drawn per request.
"""

from __future__ import annotations

import json
import math
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path

import numpy as np
from pydantic_core import to_json

from reelpick.serve.catalog import Catalog
from reelpick.serve.exploration import distinct, distinct_outside, keep_outside
from reelpick.serve.provider import Page, PageContext

_SMOOTH = 20.0


@dataclass(frozen=True, eq=False)
class FactorModel:
    """What serving needs of a trained ALS model: IDs, factors and each member's played titles
    (CSR ``seen_indptr``/``seen_indices`` over title indices)."""

    member_ids: np.ndarray
    title_ids: np.ndarray
    member_factors: np.ndarray
    title_factors: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray

    @classmethod
    def load(cls, path: str | Path) -> FactorModel:
        """Read an ALS ``.npz`` written by :meth:`reelpick.models.Recommender.save` (format 1)
        without importing the model zoo (whose sequence model pulls in torch: seconds of
        start-up and hundreds of MB per server process). ``allow_pickle=False``."""
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["__header__"]))
            if header.get("model") != "als" or header.get("format") != 1:
                raise ValueError(f"{path}: expected an ALS model of format 1, got "
                                 f"{header.get('model')!r} format {header.get('format')!r}")
            return cls(member_ids=z["__members__"].astype(object),
                       title_ids=z["__titles__"].astype(object),
                       member_factors=np.ascontiguousarray(z["state_member_factors"], np.float32),
                       title_factors=np.ascontiguousarray(z["state_title_factors"], np.float32),
                       seen_indptr=z["__ui_indptr__"], seen_indices=z["__ui_indices__"])


class EpsilonGreedyProvider:
    """The default :class:`~reelpick.serve.provider.HomepageProvider` (module docstring).

    Per-request cost is kept small by precomputing at load time what does not depend on the
    member: the weighted context scores and their order per (country, device, hour bucket), the
    moments of the title factors (so the ALS scores are standardised from a 64-d quadratic form
    instead of two passes over the catalogue), each genre's titles, and, per country and release
    window, the eligible titles. Greedy pages are cached: cold-start ones per context, known
    members' per (member, context), the ``page_cache`` most recently used (0: no member cache).
    """

    def __init__(self, catalog: Catalog, als: FactorModel, context_counts: dict[str, np.ndarray], *,
                 version: str, n_rows: int = 10, n_positions: int = 20, epsilon: float = 0.1,
                 context_weight: float = 0.5, artwork: str = "random",
                 page_cache: int = 8192) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon: must be in [0, 1], got {epsilon!r}")
        if artwork not in ("random", "first"):
            raise ValueError(f"artwork: use 'random' or 'first', got {artwork!r}")
        if len(als.title_ids) != catalog.n_titles or not np.array_equal(
                als.title_ids, catalog.title_ids):
            raise ValueError("model and catalogue disagree on the titles")
        self.catalog, self.version = catalog, version
        self.n_rows, self.n_positions = n_rows, n_positions
        self.epsilon, self.context_weight, self.artwork = epsilon, context_weight, artwork
        self.name = f"epsilon-greedy(eps={epsilon:g})"
        self._members = {str(m): i for i, m in enumerate(als.member_ids)}
        self._seen_ptr, self._seen = als.seen_indptr, als.seen_indices
        self._mf, self._tf = als.member_factors, als.title_factors
        self._n_variants = np.diff(catalog.art_offset)
        self._art_offset = np.ascontiguousarray(catalog.art_offset[:-1])
        self._art_p = 1.0 / self._n_variants  # uniform artwork: P(variant | title)
        self._ctx = self._context_scores(context_counts)
        self._ctx_w = (np.float32(context_weight) * self._ctx).astype(np.float32)
        # (country, device, bucket) flattened: row (k * D + d) * B + b (see _ctx_row)
        self._ctx_w_rows = self._ctx_w.reshape(-1, catalog.n_titles)
        self._devices = {d: i for i, d in enumerate(catalog.devices)}
        self._countries = {c: i for i, c in enumerate(catalog.countries)}
        self._buckets = context_counts["device_hour"].shape[1]
        # context scores do not depend on the member: their order is computed once
        self._ctx_order = np.argsort(-self._ctx, axis=-1, kind="stable").astype(np.int32)
        # standardising x_u . y_t over titles: mean = x_u . ybar, var = x_u' C x_u
        tf64 = self._tf.astype(np.float64)
        self._tf_mean = tf64.mean(axis=0)
        self._tf_cov = np.cov(tf64, rowvar=False, bias=True).reshape(
            tf64.shape[1], tf64.shape[1])
        self._genre_titles = [np.flatnonzero(m) for m in catalog.genre_mask]
        self._genre_total = 1e-3 * catalog.genre_mask.sum(axis=1)
        self._release_sorted = np.unique(catalog.release_ts)
        self._window = (0, 0, 0)  # [lo, hi): the release window of the last page
        self._eligible_cache: dict[tuple[int, int], tuple[np.ndarray, int, np.ndarray]] = {}
        self._cold_cache: dict[tuple[int, str, int, int], _Greedy] = {}
        self._page_cache: OrderedDict[tuple[int, int, str, int, int], _Greedy] = OrderedDict()
        self._page_cache_size = page_cache
        self._order_cache: dict[tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._layouts: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._strings: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, version_dir: str | Path, *, version: str, catalog: Catalog | None = None,
                 **params: object) -> EpsilonGreedyProvider:
        """Load from a model version folder (``als.npz``, ``context.npz``, ``catalog.json``)."""
        d = Path(version_dir)
        catalog = catalog or Catalog.load(d / "catalog.json")
        als = FactorModel.load(d / "als.npz")
        with np.load(d / "context.npz", allow_pickle=False) as z:
            counts = {k: z[k] for k in z.files}
        return cls(catalog, als, counts, version=version, **params)  # type: ignore[arg-type]

    def _context_scores(self, counts: dict[str, np.ndarray]) -> np.ndarray:
        """(K, D, B, T) standardised context log-lift scores."""
        total = counts["total"]
        T = len(total)
        prior = (total + 1.0) / (total.sum() + T)
        dh, kc = counts["device_hour"], counts["country"]
        l_dh = np.log(dh + _SMOOTH * prior) - np.log(dh.sum(-1, keepdims=True) + _SMOOTH)
        l_k = np.log(kc + _SMOOTH * prior) - np.log(kc.sum(-1, keepdims=True) + _SMOOTH)
        raw = l_dh[None, :, :, :] + l_k[:, None, None, :] - np.log(prior)
        mean = raw.mean(-1, keepdims=True)
        sd = raw.std(-1, keepdims=True)
        return ((raw - mean) / np.where(sd > 0, sd, 1.0)).astype(np.float32)

    # ------------------------------------------------------------------ compose
    def compose(self, member_id: str, context: PageContext, rng: np.random.Generator) -> Page:
        return self._explore_many([self._entry(member_id, context)], rng)[0]

    def compose_many(self, requests: Sequence[tuple[str, PageContext]],
                     rng: np.random.Generator) -> list[Page]:
        """:meth:`compose` for several ``(member_id, context)`` at once: one vectorised
        exploration and artwork pass over all their slots (numpy's per-call cost, not the
        slots, dominates a page). Each page has the distribution :meth:`compose` gives it."""
        return self._explore_many([self._entry(m, c) for m, c in requests], rng)

    def _entry(self, member_id: str, context: PageContext) -> _Greedy:
        """The greedy page of ``member_id`` in ``context``, from the caches or built."""
        k = self._countries[context.country]
        lo, hi, window = self._window
        if not lo <= context.timestamp < hi:
            window = self._release_window(context.timestamp)
        u = self._members.get(member_id, -1)
        if u >= 0:
            key = (u, k, context.device, context.hour, window)
            g = self._page_cache.get(key) if self._page_cache_size else None
            if g is None:
                g = self._greedy_for(k, window, context, u)
                if self._page_cache_size:
                    with self._lock:
                        self._page_cache[key] = g
                        if len(self._page_cache) > self._page_cache_size:
                            self._page_cache.popitem(last=False)
            else:
                with self._lock:
                    if key in self._page_cache:
                        self._page_cache.move_to_end(key)
            return g
        ckey = (k, context.device, context.hour, window)
        g = self._cold_cache.get(ckey)
        if g is None:
            g = self._greedy_for(k, window, context, -1)
            with self._lock:
                if len(self._cold_cache) >= 4096:
                    self._cold_cache.clear()
                self._cold_cache[ckey] = g
        return g

    def _release_window(self, timestamp: int) -> int:
        """How many distinct release times have passed at ``timestamp`` (the last answer's
        time range is kept: a page then needs no search)."""
        r = self._release_sorted
        window = int(np.searchsorted(r, timestamp, side="right"))
        lo = int(r[window - 1]) if window > 0 else -(2**63)
        hi = int(r[window]) if window < len(r) else 2**63
        self._window = (lo, hi, window)
        return window

    def _greedy_for(self, k: int, window: int, context: PageContext, u: int) -> _Greedy:
        """The greedy page of member ``u`` (-1: cold start) in ``context``, without its full
        score vector (what the caches keep)."""
        d = self._devices.get(context.device, 0)
        b = min(context.hour * self._buckets // 24, self._buckets - 1)
        base, n_base, candidates = self._eligible(k, window, context.timestamp)
        g = self._greedy(k, d, b, context, base, n_base, u, candidates)
        return g if u < 0 else replace(g, blend=None)

    def _eligible(self, k: int, window: int, timestamp: int
                  ) -> tuple[np.ndarray, int, np.ndarray]:
        """Titles licensed in country ``k`` and released by ``timestamp``: mask, count and
        indices (read-only, cached per country and release window: ``window`` distinct release
        times have passed)."""
        key = (k, window)
        hit = self._eligible_cache.get(key)
        if hit is None:
            mask = self.catalog.licensed[k] & (self.catalog.release_ts <= timestamp)
            idx = np.flatnonzero(mask)
            mask.flags.writeable = False
            idx.flags.writeable = False
            hit = (mask, len(idx), idx)
            with self._lock:
                if len(self._eligible_cache) >= 1024:
                    self._eligible_cache.clear()
                self._eligible_cache[key] = hit
        return hit

    def _eligible_order(self, k: int, d: int, b: int, base: np.ndarray) -> np.ndarray:
        """The first eligible titles (``base``) in context order, cached per context and
        release window (long enough for the context row plus a member's seen titles)."""
        key = (k, d, b, id(base))
        hit = self._order_cache.get(key)
        if hit is None or hit[0] is not base:
            order = self._ctx_order[k, d, b]
            pre = order[base[order]][:4 * self.n_positions + 1_024]
            pre.flags.writeable = False
            hit = (base, pre)
            with self._lock:
                if len(self._order_cache) >= 4096:
                    self._order_cache.clear()
                self._order_cache[key] = hit
        return hit[1]

    def _greedy(self, k: int, d: int, b: int, context: PageContext, base: np.ndarray,
                n_base: int, u: int, candidates: np.ndarray | None = None) -> _Greedy:
        """The greedy rows (before exploration) for member ``u`` (-1: cold start); ``base``:
        the eligible titles (mask, count ``n_base`` and indices ``candidates``)."""
        cat = self.catalog
        P = self.n_positions
        ctx = self._ctx[k, d, b]
        order = self._ctx_order[k, d, b]
        cold = u < 0
        if cold:
            blend = ctx
            eligible = base
            n_eligible = n_base
            top_blend = order[base[order]][:min(n_eligible, 3 * self.n_rows * P)]
            top_ctx = top_blend
        else:
            x = self._mf[u]
            blend = self._tf @ x
            xd = x.astype(np.float64)
            var = float(xd @ self._tf_cov @ xd)
            sd = math.sqrt(var) if var > 0 else 1.0
            shift, scale = float(xd @ self._tf_mean), 1.0 / sd
            blend -= np.float32(shift)
            blend *= np.float32(scale)
            blend += self._ctx_w[k, d, b]
            seen = self._seen[self._seen_ptr[u]:self._seen_ptr[u + 1]]
            eligible = base.copy()
            eligible[seen] = False
            n_eligible = n_base - int(base[seen].sum())
            top_blend = _top(blend, eligible, min(n_eligible, 3 * self.n_rows * P))
            pre = self._eligible_order(k, d, b, base)
            head = pre[:4 * P + len(seen)]
            top_ctx = head[eligible[head]][:4 * P]
            if len(top_ctx) < 4 * P and len(head) == len(pre) < n_base:  # many seen titles
                top_ctx = order[eligible[order]][:4 * P]
        used = np.zeros(cat.n_titles, dtype=bool)
        country = cat.countries[k]
        rows: list[tuple[str, str, np.ndarray, np.ndarray]] = []

        def add(label: str, reason: str, order: np.ndarray, score: np.ndarray,
                g: int | None = None) -> None:
            keep = ~used[order]
            if g is not None:
                keep &= cat.genre_mask[g][order]
            picked = order[keep][:P]
            if len(picked) < P and g is not None:  # genre rarer than the candidate list
                used[picked] = True
                rest = self._genre_titles[g]
                rest = rest[eligible[rest] & ~used[rest]]
                need = P - len(picked)
                if len(rest) > need:
                    rest = rest[np.argpartition(-score[rest], need - 1)[:need]]
                rest = rest[np.argsort(-score[rest], kind="stable")]
                picked = np.concatenate([picked, rest[:need]])
            if len(picked):
                used[picked] = True
                rows.append((label, reason, picked, score[picked]))

        if cold:
            add(f"Popular in {country} now", f"popular with members in {country} on "
                f"{context.device} at this time (you are new here)", top_blend, blend)
        else:
            add("Top picks for you", "ALS match with your plays, blended with what is popular "
                "in this context", top_blend, blend)
        add(f"Popular on {context.device} around {context.hour:02d}:00",
            f"played most on {context.device} in {country} at this hour", top_ctx, ctx)
        head = top_blend[:100]
        affinity = cat.genre_mask[:, head].sum(axis=1) + self._genre_total
        for g in np.argsort(-affinity, kind="stable").tolist():
            if len(rows) >= self.n_rows:
                break
            genre = cat.genres[g]
            reason = (f"popular {genre} in this context" if cold
                      else f"you play a lot of {genre}")
            add(genre.capitalize(), reason, top_blend, blend, g)
        while len(rows) < self.n_rows:
            before = len(rows)
            add("More for you", "next best matches", top_blend, blend)
            if len(rows) == before:
                break
        labels = tuple(self._intern(r[0]) for r in rows)
        reasons = tuple(self._intern(r[1]) for r in rows)
        lens = tuple(len(r[2]) for r in rows)
        layout = self._layouts.get(lens)
        if layout is None:
            layout = _layout(lens)
            with self._lock:
                if len(self._layouts) >= 1024:
                    self._layouts.clear()
                self._layouts[lens] = layout
        if rows:
            titles = np.concatenate([r[2] for r in rows]).astype(np.int32)
            score = np.concatenate([r[3] for r in rows]).astype(np.float32)
        else:
            titles, score = np.zeros(0, np.int32), np.zeros(0, np.float32)
        pool = np.flatnonzero(eligible & ~used).astype(np.int32) if cold else None
        for a in (titles, score) + ((pool,) if cold else ()):
            a.flags.writeable = False  # type: ignore[union-attr]
        n_pool = n_eligible - len(titles)  # the greedy titles are distinct and eligible
        ctx_row = (k * self._ctx.shape[1] + d) * self._ctx.shape[2] + b
        if candidates is None:
            candidates = np.flatnonzero(base)
        text = _json_numbers(score)
        if cold:
            return _Greedy(titles, *layout, score, labels, reasons, True, n_pool, base,
                           candidates, _NONE, pool, blend, -1, 0.0, 1.0, ctx_row, b"", text)
        out = np.zeros(cat.n_titles, dtype=bool)
        out[seen] = True
        out[titles] = True
        excluded = np.packbits(out, bitorder="little").tobytes()
        return _Greedy(titles, *layout, score, labels, reasons, False, n_pool, base,
                       candidates, seen, None, blend, u, shift, scale, ctx_row, excluded, text)

    def _intern(self, text: str) -> str:
        """One string object per distinct row label or reason (cached pages share them)."""
        out = self._strings.get(text)
        if out is None:
            with self._lock:
                if len(self._strings) >= 65_536:
                    self._strings.clear()
                out = self._strings.setdefault(text, text)
        return out

    def _draw(self, g: _Greedy, k: int, rng: np.random.Generator) -> np.ndarray:
        """``k`` distinct titles drawn uniformly from the exploration pool ``E`` (eligible, not
        played, not on the greedy page), in draw order."""
        if g.pool is not None:
            return g.pool[distinct(rng, len(g.pool), k)]
        if 2 * g.n_pool >= len(g.candidates):  # most candidates are in E: draw and reject
            got = distinct_outside(rng, g.candidates, g.excluded, k)
            if got is not None:
                return got
        mask = g.base.copy()
        mask[g.seen] = False
        mask[g.titles] = False
        pool = np.flatnonzero(mask)
        return pool[distinct(rng, len(pool), k)]

    def _scores(self, g: _Greedy, titles: np.ndarray) -> np.ndarray:
        """The blend scores of ``titles`` (float32), computed as :meth:`_greedy` does for the
        whole catalogue."""
        if g.blend is not None and g.member < 0:
            return g.blend[titles]
        s = np.einsum("ij,ij->i", self._tf[titles], self._mf[np.full(len(titles), g.member)])
        s -= np.float32(g.shift)
        s *= np.float32(g.scale)
        s += self._ctx_w_rows[g.ctx_row, titles]
        return s

    def _draw_many(self, items: list[tuple[_Greedy, int]], rng: np.random.Generator
                   ) -> list[np.ndarray]:
        """:meth:`_draw` for several pages: pages that draw by rejection from the same
        candidates share one call to the generator (each page its own i.i.d. draws)."""
        out: list[np.ndarray | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, (g, k) in enumerate(items):
            if g.pool is None and 2 * g.n_pool >= len(g.candidates):
                groups.setdefault(id(g.candidates), []).append(i)
            else:
                out[i] = self._draw(g, k, rng)
        for idx in groups.values():
            cand = items[idx[0]][0].candidates
            sizes = [2 * items[i][1] + 4 for i in idx]
            draws = cand[rng.integers(0, len(cand), size=sum(sizes))].tolist()
            at = 0
            for i, m in zip(idx, sizes):
                g, k = items[i]
                kept = keep_outside(draws[at:at + m], g.excluded, k)
                at += m
                # too many rejected: draw again, independently (still uniform)
                out[i] = (np.asarray(kept, dtype=np.int64) if kept is not None
                          else self._draw(g, k, rng))
        return out  # type: ignore[return-value]

    def _explore_many(self, gs: list[_Greedy], rng: np.random.Generator) -> list[Page]:
        """Explore the greedy pages ``gs`` (:func:`~reelpick.serve.exploration.explore`'s
        formula, slot by slot) and draw their artwork, all slots in one pass."""
        cat = self.catalog
        eps = self.epsilon
        bounds = [0, *accumulate(len(g.titles) for g in gs)]
        N = bounds[-1]
        if len(gs) == 1:
            titles = gs[0].titles.astype(np.int64)
            score = gs[0].score.astype(np.float64)
        else:
            titles = np.concatenate([g.titles for g in gs], dtype=np.int64)
            score = np.concatenate([g.score for g in gs], dtype=np.float64)
        u = rng.random(2 * N)  # exploration coins, then artwork draws
        explored = u[:N] < eps
        prop = np.full(N, 1.0 - eps)
        for b, g in enumerate(gs):
            if not (eps > 0.0 and g.n_pool >= len(g.titles)):  # greedy page, propensity 1
                explored[bounds[b]:bounds[b + 1]] = False
                prop[bounds[b]:bounds[b + 1]] = 1.0
        xi = np.flatnonzero(explored)
        texts = [g.score_text.split(b",") if len(g.titles) else [] for g in gs]
        if len(xi):
            xl = xi.tolist()
            spans: list[tuple[int, int, int]] = []
            j = 0
            for b in range(len(gs)):
                hi = bisect_left(xl, bounds[b + 1], j)
                if hi > j:
                    spans.append((b, j, hi))
                j = hi
            drawn = self._draw_many([(gs[b], hi - lo) for b, lo, hi in spans], rng)
            new = np.concatenate(drawn) if len(drawn) > 1 else drawn[0]
            titles[xi] = new
            sg = [gs[b] for b, _, _ in spans]
            counts = [hi - lo for _, lo, hi in spans]
            prop[xi] = np.repeat([eps / g.n_pool for g in sg], counts)
            if all(g.member >= 0 for g in sg):  # blend scores of all drawn titles at once
                s = np.einsum("ij,ij->i", self._tf[new],
                              self._mf[np.repeat([g.member for g in sg], counts)])
                s -= np.repeat(np.array([g.shift for g in sg], np.float32), counts)
                s *= np.repeat(np.array([g.scale for g in sg], np.float32), counts)
                s += self._ctx_w_rows[np.repeat([g.ctx_row for g in sg], counts), new]
                score[xi] = s
            else:
                for (_, lo, hi), g, d in zip(spans, sg, drawn):
                    score[xi[lo:hi]] = self._scores(g, d)
            drawn_text = _json_numbers(score[xi]).split(b",")
            for b, lo, hi in spans:
                page_text, first = texts[b], bounds[b]
                for j in range(lo, hi):
                    page_text[xl[j] - first] = drawn_text[j]
        if self.artwork == "random":
            art_idx = self._art_offset[titles] + (u[N:] * self._n_variants[titles]).astype(
                np.int64)
            art_p = self._art_p[titles]
        else:
            art_idx = self._art_offset[titles]
            art_p = np.ones(N)
        title_ids = cat.title_ids[titles]
        artwork_ids = cat.artwork_ids[art_idx]
        pages = []
        for b, g in enumerate(gs):
            lo, hi = bounds[b], bounds[b + 1]
            pages.append(Page(
                title_ids=title_ids[lo:hi], artwork_ids=artwork_ids[lo:hi],
                row_index=g.row_index, position=g.position, propensity=prop[lo:hi],
                artwork_propensity=art_p[lo:hi], score=score[lo:hi], explored=explored[lo:hi],
                row_labels=g.labels, row_reasons=g.reasons, cold_start=g.cold,
                title_index=titles[lo:hi], artwork_index=art_idx[lo:hi],
                score_text=texts[b]))
        return pages


_NONE = np.zeros(0, dtype=np.int64)
_NONE.flags.writeable = False


def _json_numbers(a: np.ndarray) -> bytes:
    """``a``'s values as JSON numbers (shortest round trip; ``null`` when not finite),
    comma-separated: one Rust call (``pydantic_core.to_json``) for the whole array."""
    return to_json(np.asarray(a, dtype=np.float64).tolist(), inf_nan_mode="null")[1:-1]


def _layout(lens: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Row index and position of every slot for rows of ``lens`` slots (read-only)."""
    row_index = np.repeat(np.arange(len(lens), dtype=np.int32), lens)
    position = (np.concatenate([np.arange(n, dtype=np.int32) for n in lens]) if lens
                else np.zeros(0, np.int32))
    row_index.flags.writeable = position.flags.writeable = False
    return row_index, position


@dataclass(frozen=True, eq=False, slots=True)
class _Greedy:
    """Greedy rows before exploration, flattened to slot arrays (read-only, shared between the
    requests that hit the cache), and what exploration needs: the pool size ``n_pool``; the
    pool itself (cold pages) or how to draw from it (``base``/``candidates``, mask and indices
    of the eligible titles before the member's played ones, ``seen``, which are excluded with
    the greedy titles); the scores of
    other titles: ``blend`` (every title; cold pages: the context scores) or the member and the
    standardisation (``shift``, ``scale``, ``ctx_row``) to compute them (cached member pages keep
    no catalogue-sized array of their own)."""

    titles: np.ndarray
    row_index: np.ndarray
    position: np.ndarray
    score: np.ndarray
    labels: tuple[str, ...]
    reasons: tuple[str, ...]
    cold: bool
    n_pool: int
    base: np.ndarray
    candidates: np.ndarray
    seen: np.ndarray
    pool: np.ndarray | None
    blend: np.ndarray | None
    member: int
    shift: float
    scale: float
    ctx_row: int  # (country, device, bucket) as a row of the flattened context scores
    excluded: bytes  # bit set of the seen and greedy titles (what the pool leaves out)
    score_text: bytes  # the greedy scores as JSON numbers, comma-separated


def _top(score: np.ndarray, eligible: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` best eligible titles, best first.

    Exact, but faster than a partition of the whole catalogue: a threshold is estimated from a
    strided sample, the titles at or above it are partitioned (a few times ``m`` of them), and
    the whole catalogue is partitioned only when fewer than ``m`` eligible titles pass it.
    """
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    masked = np.where(eligible, score, -np.inf)
    n = len(masked)
    part = None
    if 8 * m < n:
        sample = masked[::8]
        q = min(len(sample) - 1, (m + 7) // 8 + 2 * int(math.sqrt(m)) + 8)
        t = np.partition(sample, len(sample) - 1 - q)[len(sample) - 1 - q]
        if np.isfinite(t):
            cand = np.flatnonzero(masked >= t)
            if len(cand) >= m:
                c = masked[cand]
                part = cand[np.argpartition(c, len(c) - m)[len(c) - m:]]
    if part is None:
        part = np.argpartition(masked, n - m)[n - m:] if m < n else np.arange(n)
    part = part[np.argsort(-masked[part], kind="stable")]
    return part[np.isfinite(masked[part])]
