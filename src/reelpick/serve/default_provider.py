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


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return ((x - x.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)


class EpsilonGreedyProvider:
    """The default :class:`~reelpick.serve.provider.HomepageProvider` (module docstring)."""

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
        self._devices = {d: i for i, d in enumerate(catalog.devices)}
        self._countries = {c: i for i, c in enumerate(catalog.countries)}
        self._buckets = context_counts["device_hour"].shape[1]
        # context scores do not depend on the member: their order is computed once
        self._ctx_order = np.argsort(-self._ctx, axis=-1, kind="stable").astype(np.int32)

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
        cat = self.catalog
        k = self._countries[context.country]
        d = self._devices.get(context.device, 0)
        b = min(context.hour * self._buckets // 24, self._buckets - 1)
        ctx = self._ctx[k, d, b]
        eligible = cat.licensed[k] & (cat.release_ts <= context.timestamp)
        u = self._members.get(member_id, -1)
        cold = u < 0
        if cold:
            blend = ctx
        else:
            blend = _z(self._tf @ self._mf[u]) + self.context_weight * ctx
            eligible[self._seen[self._seen_ptr[u]:self._seen_ptr[u + 1]]] = False
        n_eligible = int(eligible.sum())
        used = np.zeros(cat.n_titles, dtype=bool)
        P = self.n_positions
        top_blend = _top(blend, eligible, min(n_eligible, 3 * self.n_rows * P))
        order = self._ctx_order[k, d, b]
        top_ctx = order[eligible[order]][:4 * P] if not cold else top_blend
        country = cat.countries[k]
        rows: list[tuple[str, str, np.ndarray, np.ndarray]] = []

        def add(label: str, reason: str, order: np.ndarray, score: np.ndarray,
                mask: np.ndarray | None = None) -> None:
            keep = ~used[order] if mask is None else (~used[order] & mask[order])
            picked = order[keep][:P]
            if len(picked) < P and mask is not None:  # genre rarer than the candidate list
                rest = np.flatnonzero(mask & eligible & ~used)
                rest = rest[np.argsort(-score[rest], kind="stable")]
                picked = np.concatenate([picked, rest[~np.isin(rest, picked)]])[:P]
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
        affinity = cat.genre_mask[:, head].sum(axis=1) + 1e-3 * cat.genre_mask.sum(axis=1)
        for g in np.argsort(-affinity, kind="stable"):
            if len(rows) >= self.n_rows:
                break
            genre = cat.genres[g]
            reason = (f"popular {genre} in this context" if cold
                      else f"you play a lot of {genre}")
            add(genre.capitalize(), reason, top_blend, blend, mask=cat.genre_mask[g])
        while len(rows) < self.n_rows:
            before = len(rows)
            add("More for you", "next best matches", top_blend, blend)
            if len(rows) == before:
                break
        return self._explore(rows, eligible, used, blend, cold, rng)

    def _explore(self, rows: list[tuple[str, str, np.ndarray, np.ndarray]], eligible: np.ndarray,
                 used: np.ndarray, blend: np.ndarray, cold: bool, rng: np.random.Generator
                 ) -> Page:
        cat = self.catalog
        greedy = (np.concatenate([r[2] for r in rows]) if rows
                  else np.zeros(0, dtype=np.int64))
        row_index = np.concatenate([np.full(len(r[2]), i, np.int32)
                                    for i, r in enumerate(rows)]) if rows else np.zeros(0, np.int32)
        position = np.concatenate([np.arange(len(r[2]), dtype=np.int32)
                                   for r in rows]) if rows else np.zeros(0, np.int32)
        score = np.concatenate([r[3] for r in rows]) if rows else np.zeros(0, np.float32)
        pool = np.flatnonzero(eligible & ~used)
        titles, prop, explored = epsilon_greedy(greedy, pool, self.epsilon, rng)
        score = np.where(explored, blend[titles], score)
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
            row_index=row_index, position=position, propensity=prop,
            artwork_propensity=art_p, score=score.astype(np.float64), explored=explored,
            row_labels=tuple(r[0] for r in rows), row_reasons=tuple(r[1] for r in rows),
            cold_start=cold)


def _top(score: np.ndarray, eligible: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` best eligible titles, best first."""
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    masked = np.where(eligible, score, -np.inf)
    if m < len(masked):
        part = np.argpartition(-masked, m - 1)[:m]
    else:
        part = np.arange(len(masked))
    part = part[np.argsort(-masked[part], kind="stable")]
    return part[np.isfinite(masked[part])]
