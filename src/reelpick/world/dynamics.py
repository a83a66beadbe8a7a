r"""The world's equations: who plays what, with and without being shown. Pure, vectorised code.

For a visit :math:`v` by member :math:`m` at time :math:`\tau` in context
:math:`c = (k, d, h, w)` (country, device, local hour, weekday) with hidden mood :math:`z`,
and a title :math:`t` with artwork :math:`a` (see ``docs/world.md`` for the full derivation):

.. math::

    u_m(\tau) &= A_m + \delta\, s(\tau)\,(B_m - A_m), \quad
    s(\tau) = \mathrm{clip}((\tau - \tau_0) / H, 0, 1) \\
    \tilde R_m &= R_m\, 2^{-(\tau - \tau_m^R)/h_R}, \quad
    \rho_m(\tau) = \tilde R_m / (1 + \textstyle\sum_\gamma \tilde R_{m\gamma})
    \quad \text{(short-term interest)} \\
    \eta_m &= u_m(\tau) + \beta_R\, \rho_m(\tau) \\
    b(c, t) &= \beta_P\, \mathrm{pop}_t(\mathrm{day}) + \beta_D[d]\, \mathrm{short}_t
             + \mathrm{fam}_t (\beta_A [12 \le h < 18] + \beta_W [w \ge 5]) \\
    W(c, t) &= \mathrm{avail}_k(t, \mathrm{day})\, e^{b(c, t) + \beta_O\, \mathrm{pop}_t
        + \beta_Z\, z\, \mathrm{series}_t},
        \quad
    Z_\gamma(c) = \textstyle\sum_{t \ni \gamma} W(c, t) \\
    P(\gamma \mid v) &= \mathrm{softmax}_{\gamma: Z_\gamma > 0}(\eta_{m\gamma}) \\
    p_0(v, t) &= \sigma_s(z) \textstyle\sum_{\gamma \in t} P(\gamma \mid v)\, W(c, t) / Z_\gamma(c)
        \quad \text{(organic: search, genre, title)} \\
    x(v, t, a) &= \beta_0 + \eta_m \cdot \bar g_t + b(c, t) - \kappa\, \mathrm{pop}_t
                 + \beta_\theta\, V_{m, \theta_a}
                 + \beta_q\, q_a - \beta_S\, \mathrm{seen}(m, t) \\
    P(\text{play} \mid \text{shown in slot } (r, j)) &= p_0 + (1 - p_0)\, e_{rj}\, \sigma(x),
        \quad e_{rj} = \lambda_r^r \lambda_j^j \\
    E[\text{watch} \mid \text{play}] &= \mathrm{dur}_t\, \sigma(\omega_0 + \omega_1\,
        \eta_m \cdot \bar g_t)

The causal effect of showing :math:`t` in slot :math:`(r, j)` is
:math:`(1 - p_0)\, e_{rj}\, \sigma(x)`. The hidden mood :math:`z` acts on organic plays only
(in binge mood the member searches more often, ``mood_search_rate`` instead of ``search_rate``,
and favours series), so it confounds exposure and plays while the
effect of exposure given :math:`(m, t, c)` does not depend on it.

The organic-vs-uplift trade-off (both 0 by default): :math:`\beta_O` =
``organic_popularity_weight`` concentrates organic search on popular titles, and
:math:`\kappa` = ``saturation`` lowers the page's persuasion for them ("would watch it anyway":
the titles everyone searches for are the ones a page adds least to).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelpick.data.schema import DEVICES
from reelpick.world.config import WorldConfig
from reelpick.world.entities import Entities
from reelpick.world.policy import Catalog, VisitBatch, hidden_mood

DAY = 86_400
_N_DEV = len(DEVICES)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass
class MemberState:
    """Mutable per-member state: decayed genre sums of recent plays (``recent``, as of
    ``recent_time``) and a ring buffer of the last ``seen_memory`` titles played (``-1`` = none).
    """

    recent: np.ndarray
    recent_time: np.ndarray
    seen: np.ndarray
    seen_ptr: np.ndarray

    @classmethod
    def empty(cls, n_members: int, n_genres: int, memory: int, start: int) -> MemberState:
        return cls(np.zeros((n_members, n_genres)), np.full(n_members, float(start)),
                   np.full((n_members, memory), -1, dtype=np.int64),
                   np.zeros(n_members, dtype=np.int64))

    def copy(self) -> MemberState:
        return MemberState(self.recent.copy(), self.recent_time.copy(), self.seen.copy(),
                           self.seen_ptr.copy())


@dataclass(frozen=True, eq=False)
class DayTables:
    """Everything that depends on the day only: availability, popularity and the organic title
    weights per context key ``key = ((country * 4 + device) * 4 + family_ctx) * 2 + mood``."""

    day: int
    available: np.ndarray      # (K, T) bool
    popularity: np.ndarray     # (T,) true
    observed: np.ndarray       # (T,) observable
    base: np.ndarray           # (n_keys, T) b(c, t), without the mood term
    shift: np.ndarray          # (T,) -saturation * pop_t, added to the uplift logit x
    weight: np.ndarray         # (n_keys, T) W(c, t) = avail * exp(b + mood term)
    z: np.ndarray              # (n_keys, G)
    cum: np.ndarray            # (n_keys * L,) cumulative W over genre segments, key-major
    catalog: Catalog


@dataclass(frozen=True, eq=False)
class VisitFeatures:
    key: np.ndarray     # (n,)
    eta: np.ndarray     # (n, G) taste + short-term interest
    genre_p: np.ndarray  # (n, G) P(genre | visit) for the organic search
    ratio: np.ndarray   # (n, G) P(genre | visit) / Z_genre (0 where Z = 0)
    search: np.ndarray  # (n,) probability of an organic play this visit


class Dynamics:
    """The equations above for one :class:`Entities` draw; caches the current day's tables."""

    def __init__(self, cfg: WorldConfig, ent: Entities) -> None:
        self.cfg, self.ent = cfg, ent
        self.n_keys = len(cfg.countries) * _N_DEV * 4 * 2
        onehot = ent.genre_onehot > 0
        self.genre_titles = np.concatenate([np.flatnonzero(onehot[:, g])
                                            for g in range(cfg.n_genres)])
        sizes = onehot.sum(axis=0)
        self.seg_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.seg_len = sizes.astype(np.int64)
        self.L = int(sizes.sum())
        k, d, f, z = np.meshgrid(np.arange(len(cfg.countries)), np.arange(_N_DEV),
                                 np.arange(4), np.arange(2), indexing="ij")
        self._key_country, self._key_device = k.ravel(), d.ravel()
        self._key_fam, self._key_mood = f.ravel(), z.ravel()
        self._cache: DayTables | None = None
        self._catalog_static = dict(n_variants=ent.n_variants, is_series=ent.is_series,
                                    duration=ent.duration, genre_onehot=ent.genre_onehot,
                                    art_offset=ent.art_offset)

    # ------------------------------------------------------------------ day level
    def popularity(self, day: int, observed: bool = False) -> np.ndarray:
        """``pop_t(day) = quality_t + boost * exp(-max(day - release_t, 0) / decay)``."""
        age = np.maximum(day - self.ent.release_day, 0)
        q = self.ent.quality_observed if observed else self.ent.quality
        return q + self.cfg.new_release_boost * np.exp(-age / self.cfg.popularity_decay_days)

    def available(self, day: int) -> np.ndarray:
        return self.ent.licensed & (self.ent.release_day <= day)[None, :]

    def tables(self, day: int) -> DayTables:
        if self._cache is not None and self._cache.day == day:
            return self._cache
        cfg, ent = self.cfg, self.ent
        avail = self.available(day)
        pop = self.popularity(day)
        fam_val = np.array([0.0, cfg.family_afternoon, cfg.family_weekend,
                            cfg.family_afternoon + cfg.family_weekend])
        dev = np.asarray(cfg.device_short)
        # In place where possible (fresh memory is slow on some machines); the same operations
        # in the same order as the formulas, so the values are bit-for-bit those of the formulas:
        # base = (pop term + device term) + family term
        base = dev[self._key_device][:, None] * ent.shortness[None, :]
        np.add(cfg.popularity_weight * pop[None, :], base, out=base)
        tmp = np.multiply(fam_val[self._key_fam][:, None], ent.is_family[None, :])
        base += tmp
        # weight = avail * exp(base + mood term), mood term = series logit (+ popularity)
        mood = np.multiply(cfg.mood_series_logit * self._key_mood[:, None],
                           ent.is_series[None, :], out=tmp)
        if cfg.organic_popularity_weight:
            mood += cfg.organic_popularity_weight * pop[None, :]
        weight = np.add(base, mood, out=mood)
        np.exp(weight, out=weight)
        np.copyto(weight, 0.0, where=~avail[self._key_country])
        shift = -cfg.saturation * pop
        z = weight @ ent.genre_onehot
        cum = np.take(weight, self.genre_titles, axis=1).reshape(-1)  # key-major
        np.cumsum(cum, out=cum)
        cat = Catalog(popularity=self.popularity(day, observed=True), **self._catalog_static)
        self._cache = DayTables(day, avail, pop, cat.popularity, base, shift, weight, z, cum,
                                cat)
        return self._cache

    # ------------------------------------------------------------------ visit level
    def key(self, vb: VisitBatch) -> np.ndarray:
        fam = ((vb.hour >= 12) & (vb.hour < 18)).astype(np.int64) + 2 * (vb.day_of_week >= 5)
        return ((vb.country * _N_DEV + vb.device) * 4 + fam) * 2 + hidden_mood(vb).astype(np.int64)

    def taste(self, member: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
        """``u_m(tau)``, shape ``(n, G)``."""
        cfg, ent = self.cfg, self.ent
        s = np.clip((timestamp - cfg.start) / (cfg.days * DAY), 0.0, 1.0)
        a = ent.taste_start[member]
        return a + (cfg.drift * s)[:, None] * (ent.taste_end[member] - a)

    def recent(self, state: MemberState, member: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
        """``rho_m(tau) = R / (1 + sum R)`` with ``R`` the decayed genre sums of recent plays: the
        genre shares of recent plays, shrunk by one pseudo-play; ``(n, G)``."""
        dt = np.maximum(timestamp - state.recent_time[member], 0.0)
        r = state.recent[member] * np.exp2(-dt / (self.cfg.recent_half_life_days * DAY))[:, None]
        return r / (1.0 + r.sum(axis=1, keepdims=True))

    def features(self, vb: VisitBatch, state: MemberState) -> VisitFeatures:
        tab = self.tables(vb.day)
        key = self.key(vb)
        ts = vb.timestamp.astype(np.float64)
        eta = self.taste(vb.member, ts) + self.cfg.recent_weight * self.recent(state, vb.member, ts)
        z = tab.z[key]
        ok = z > 0
        logits = np.where(ok, eta, -np.inf)
        mx = logits.max(axis=1, keepdims=True)
        mx = np.where(np.isfinite(mx), mx, 0.0)
        e = np.where(ok, np.exp(logits - mx), 0.0)
        tot = e.sum(axis=1, keepdims=True)
        gp = np.divide(e, tot, out=np.zeros_like(e), where=tot > 0)
        ratio = np.divide(gp, z, out=np.zeros_like(gp), where=ok)
        rate = np.where(hidden_mood(vb) > 0, self.cfg.mood_search_rate, self.cfg.search_rate)
        search = rate * ok.any(axis=1)
        return VisitFeatures(key, eta, gp, ratio, search)

    def seen(self, state: MemberState, member: np.ndarray, titles: np.ndarray) -> np.ndarray:
        buf = state.seen[member]  # (n, K)
        return (titles[:, :, None] == buf[:, None, :]).any(axis=2)

    def pair(self, vb: VisitBatch, vf: VisitFeatures, state: MemberState, titles: np.ndarray,
             artworks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For titles ``(n, k)`` (``-1`` = none) and global artwork indices ``(n, k)``: organic
        probability ``p0``, shown-and-examined play probability ``sigma(x)`` and the mean watch
        fraction, each ``(n, k)``; zero for unavailable titles or empty slots."""
        cfg, ent = self.cfg, self.ent
        tab = self.tables(vb.day)
        ok = titles >= 0
        t = np.where(ok, titles, 0)
        key = vf.key[:, None]
        ok &= tab.available[vb.country[:, None], t]
        gm = ent.genre_mean[t]                                   # (n, k, G)
        aff = np.einsum("nkg,ng->nk", gm, vf.eta)
        w = tab.weight[key, t]
        p0 = vf.search[:, None] * w * np.einsum("nkg,ng->nk", ent.genre_onehot[t], vf.ratio)
        p0 = np.where(ok, np.minimum(p0, 1.0), 0.0)
        x = cfg.uplift_bias + aff + tab.base[key, t]
        if cfg.saturation:
            x = x + tab.shift[t]
        if artworks is not None:
            a = np.where(ok, artworks, 0)
            x = x + (cfg.theme_weight * ent.theme_taste[vb.member[:, None], ent.art_theme[a]]
                     + cfg.quality_weight * ent.art_quality[a])
        if cfg.seen_penalty:
            x = x - cfg.seen_penalty * self.seen(state, vb.member, t)
        up = np.where(ok, sigmoid(x), 0.0)
        mu = sigmoid(cfg.watch_bias + cfg.watch_affinity * aff)
        return p0, up, mu

    def examination(self, row: int | np.ndarray, position: int | np.ndarray) -> np.ndarray:
        """``e = row_decay ** row * position_decay ** position``."""
        return self.cfg.row_decay ** np.asarray(row) * self.cfg.position_decay ** np.asarray(
            position)

    def organic_all(self, vb: VisitBatch, vf: VisitFeatures
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Organic probability of every title ``(n, T)`` and the mean watch fraction ``(n, T)``."""
        cfg, ent = self.cfg, self.ent
        tab = self.tables(vb.day)
        p0 = vf.search[:, None] * tab.weight[vf.key] * (vf.ratio @ ent.genre_onehot.T)
        mu = sigmoid(cfg.watch_bias + cfg.watch_affinity * (vf.eta @ ent.genre_mean.T))
        return p0, mu

    def sample_organic(self, vb: VisitBatch, vf: VisitFeatures, rng: np.random.Generator
                       ) -> np.ndarray:
        """One organic title per visit (``-1`` = no organic play), drawn by search -> genre ->
        title with the probabilities ``p0`` above."""
        n = len(vb)
        out = np.full(n, -1, dtype=np.int64)
        u_search, u_genre, u_title = rng.random(n), rng.random(n), rng.random(n)
        idx = np.flatnonzero(u_search < vf.search)
        if idx.size == 0:
            return out
        cg = np.cumsum(vf.genre_p[idx], axis=1)
        g = (cg < (u_genre[idx] * cg[:, -1])[:, None]).sum(axis=1)
        g = np.minimum(g, self.cfg.n_genres - 1)
        tab = self.tables(vb.day)
        key = vf.key[idx]
        start = key * self.L + self.seg_start[g]
        before = np.where(start > 0, tab.cum[np.maximum(start - 1, 0)], 0.0)
        target = before + u_title[idx] * tab.z[key, g]
        pos = np.searchsorted(tab.cum, target, side="right")
        pos = np.minimum(pos, start + self.seg_len[g] - 1)
        out[idx] = self.genre_titles[pos - key * self.L]
        return out

    def update(self, state: MemberState, member: np.ndarray, titles: np.ndarray,
               timestamp: np.ndarray, at: float) -> None:
        """Add plays (sorted by time) to the member state, decayed to time ``at``."""
        if member.size == 0:
            return
        cfg = self.cfg
        hl = cfg.recent_half_life_days * DAY
        touched = np.unique(member)
        dt = np.maximum(at - state.recent_time[touched], 0.0)
        state.recent[touched] *= np.exp2(-dt / hl)[:, None]
        state.recent_time[touched] = at
        contrib = self.ent.genre_mean[titles] * np.exp2(-np.maximum(at - timestamp, 0) / hl)[:,
                                                                                          None]
        np.add.at(state.recent, member, contrib)
        # ring buffer of recent titles: keep the last `K` plays of each member
        K = state.seen.shape[1]
        order = np.argsort(member, kind="stable")
        m_sorted, t_sorted = member[order], titles[order]
        first = np.searchsorted(m_sorted, m_sorted, side="left")
        rank = np.arange(m_sorted.size) - first
        count = np.bincount(m_sorted, minlength=state.seen_ptr.size)[m_sorted]
        keep = rank >= count - K
        m_k, t_k, r_k = m_sorted[keep], t_sorted[keep], rank[keep]
        slot = (state.seen_ptr[m_k] + r_k) % K
        state.seen[m_k, slot] = t_k
        state.seen_ptr[touched] = (state.seen_ptr[touched]
                                   + np.bincount(m_sorted, minlength=state.seen_ptr.size)[
                                       touched]) % K
