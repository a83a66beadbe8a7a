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
Exploration: :func:`reelpick.serve.exploration.epsilon_greedy` over the greedy page with the pool
of all other eligible titles. Artwork: uniform over the title's variants (``artwork="random"``,
propensity ``1 / n_variants``) or its first variant (``"first"``, propensity 1).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reelpick.serve.catalog import Catalog
from reelpick.serve.exploration import epsilon_greedy
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
    window, the eligible titles; cold-start pages' greedy rows are cached per context.
    """

    def __init__(self, catalog: Catalog, als: FactorModel, context_counts: dict[str, np.ndarray], *,
                 version: str, n_rows: int = 10, n_positions: int = 20, epsilon: float = 0.1,
                 context_weight: float = 0.5, artwork: str = "random") -> None:
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
        self._ctx = self._context_scores(context_counts)
        self._ctx_w = (np.float32(context_weight) * self._ctx).astype(np.float32)
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
        self._eligible_cache: dict[tuple[int, int], tuple[np.ndarray, int]] = {}
        self._cold_cache: dict[tuple[int, int, str, int], _Greedy] = {}
        self._order_cache: dict[tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]] = {}
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
        k = self._countries[context.country]
        d = self._devices.get(context.device, 0)
        b = min(context.hour * self._buckets // 24, self._buckets - 1)
        window = int(np.searchsorted(self._release_sorted, context.timestamp, side="right"))
        base, n_base = self._eligible(k, window, context.timestamp)
        u = self._members.get(member_id, -1)
        if u >= 0:
            return self._explore(self._greedy(k, d, b, context, base, n_base, u), rng)
        key = (k, window, context.device, context.hour)
        g = self._cold_cache.get(key)
        if g is None:
            g = self._greedy(k, d, b, context, base, n_base, -1)
            with self._lock:
                if len(self._cold_cache) >= 4096:
                    self._cold_cache.clear()
                self._cold_cache[key] = g
        return self._explore(g, rng)

    def _eligible(self, k: int, window: int, timestamp: int) -> tuple[np.ndarray, int]:
        """Titles licensed in country ``k`` and released by ``timestamp`` (read-only, cached per
        country and release window: ``window`` distinct release times have passed)."""
        key = (k, window)
        hit = self._eligible_cache.get(key)
        if hit is None:
            mask = self.catalog.licensed[k] & (self.catalog.release_ts <= timestamp)
            mask.flags.writeable = False
            hit = (mask, int(mask.sum()))
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
                n_base: int, u: int) -> _Greedy:
        """The greedy rows (before exploration) for member ``u`` (-1: cold start)."""
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
            blend -= np.float32(xd @ self._tf_mean)
            blend *= np.float32(1.0 / sd)
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
        return _Greedy.build(rows, eligible, used, blend, cold)

    def _explore(self, g: _Greedy, rng: np.random.Generator) -> Page:
        cat = self.catalog
        pool = g.pool if g.pool is not None else np.flatnonzero(g.eligible & ~g.used)
        titles, prop, explored = epsilon_greedy(g.titles, pool, self.epsilon, rng)
        score = np.where(explored, g.blend[titles], g.score) if explored.any() else g.score
        nv = self._n_variants[titles]
        if self.artwork == "random":
            variant = (rng.random(len(titles)) * nv).astype(np.int64)
            art_p = 1.0 / nv
        else:
            variant = np.zeros(len(titles), dtype=np.int64)
            art_p = np.ones(len(titles))
        art = cat.artwork_ids[cat.art_offset[titles] + variant]
        return Page(
            title_ids=cat.title_ids[titles].tolist(), artwork_ids=art.tolist(),
            row_index=g.row_index, position=g.position, propensity=prop,
            artwork_propensity=art_p, score=score.astype(np.float64), explored=explored,
            row_labels=g.labels, row_reasons=g.reasons, cold_start=g.cold)


@dataclass(frozen=True, eq=False)
class _Greedy:
    """Greedy rows before exploration, flattened to slot arrays (read-only; cold-start ones are
    shared between requests). ``pool`` is precomputed for cold pages only."""

    titles: np.ndarray
    row_index: np.ndarray
    position: np.ndarray
    score: np.ndarray
    labels: tuple[str, ...]
    reasons: tuple[str, ...]
    eligible: np.ndarray
    used: np.ndarray
    blend: np.ndarray
    cold: bool
    pool: np.ndarray | None

    @classmethod
    def build(cls, rows: list[tuple[str, str, np.ndarray, np.ndarray]], eligible: np.ndarray,
              used: np.ndarray, blend: np.ndarray, cold: bool) -> _Greedy:
        if rows:
            titles = np.concatenate([r[2] for r in rows])
            lens = [len(r[2]) for r in rows]
            row_index = np.repeat(np.arange(len(rows), dtype=np.int32), lens)
            position = np.concatenate([np.arange(n, dtype=np.int32) for n in lens])
            score = np.concatenate([r[3] for r in rows]).astype(np.float64)
        else:
            titles = np.zeros(0, dtype=np.int64)
            row_index = position = np.zeros(0, np.int32)
            score = np.zeros(0)
        pool = np.flatnonzero(eligible & ~used) if cold else None
        for a in (titles, row_index, position, score, used) + ((pool,) if cold else ()):
            a.flags.writeable = False  # type: ignore[union-attr]
        return cls(titles, row_index, position, score, tuple(r[0] for r in rows),
                   tuple(r[1] for r in rows), eligible, used, blend, cold, pool)


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
