r"""Features of a (member, title, image, context) for the artwork bandits, from play history.

:class:`ArtworkHistory` keeps counts from artwork feedback (:class:`~.feedback.ArtworkRows`) and
turns them into smoothed tables; :meth:`ArtworkHistory.features` maps any array of (member,
device, artwork) to feature vectors :math:`\phi \in \mathbb R^d`. With :math:`k` pseudo-
impressions of smoothing (``smoothing``), :math:`N` impressions, :math:`P` plays and :math:`W`
watch seconds:

.. math::

    \bar r &= (P + 1) / (N + 20), \quad
    r_m = \frac{P_m + k \bar r}{N_m + k}, \quad
    r_{m\theta} = \frac{P_{m\theta} + k r_m}{N_{m\theta} + k}, \quad
    \tau_{m\theta} = \log(r_{m\theta} / r_m)
        \quad \text{(member's take lift for images of theme } \theta) \\
    s_{m\theta} &= \frac{W_{m\theta} - W_m N_{m\theta} / N_m}{W_m + c_W}
        \quad \text{(watch share of plays with theme } \theta\text{ minus its exposure share)} \\
    \gamma_{m\theta} &= \frac{\sum_g W_{mg} M_{g\theta}}{W_m + c_W}
        \quad \text{(watch-weighted genres of the member's plays, mapped to themes)} \\
    c_a &= \log \frac{r_a}{r_t}, \; r_a = \frac{P_a + k r_t}{N_a + k}
        \quad \text{(how the image does overall, vs its title)} \\
    c_{\kappa a} &= \log \frac{(P_{\kappa a} + k r_a) / (N_{\kappa a} + k)}{r_a}
        \quad \text{(among similar members: cluster } \kappa(m) = \arg\max_\theta \tau_{m\theta})

The vector holds, by group (``FeatureConfig``): theme one-hot :math:`e_\theta` (always);
quality :math:`q_a`; community :math:`c_a`; personal :math:`e_\theta \odot \tau_m`,
:math:`s_{m\theta_a}`, :math:`\gamma_{m\theta_a}`, :math:`c_{\kappa(m) a}`; context
:math:`\mathrm{onehot}(\mathrm{device}) \otimes e_\theta`. Without the personal and context groups
the features do not depend on the member: a bandit on them learns the best single image per
title (the non-personalised baseline).

Honest features for training. Counts that include a row's own play leak its label (and
leave-one-out counts anti-leak it); :meth:`ArtworkHistory.cross_fitted` therefore computes each
fold's features from a history built on the other folds (folds = visits), as in target encoding.

Example
-------
>>> import numpy as np
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.policies import UniformPolicy
>>> from reelpick.artwork import ArtworkCatalog, ArtworkRows
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> cat = ArtworkCatalog.from_world(world)
>>> pages = world.simulate(UniformPolicy(), 200).logged_pages()
>>> rows = ArtworkRows.from_pages(pages, cat.art_offset, world.members()["member_id"])
>>> hist = ArtworkHistory(cat, world.config.n_members).update(rows)
>>> phi = hist.features(np.array([0]), np.array([1]), np.array([[0, 1, 2]]))
>>> phi.shape == (1, 3, len(hist.feature_names))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelpick.artwork.catalog import ArtworkCatalog
from reelpick.artwork.feedback import ArtworkRows
from reelpick.data.schema import DEVICES


@dataclass(frozen=True)
class FeatureConfig:
    """Which feature groups to use and how much to smooth.

    ``personal`` member-history features and similar-member interest; ``context`` device x
    theme; ``community`` the image's overall lift; ``quality`` the image-quality score;
    ``smoothing`` pseudo-impressions :math:`k`; ``watch_smoothing`` :math:`c_W` seconds;
    ``min_history`` impressions before a member joins a similar-members cluster.
    """

    personal: bool = True
    context: bool = True
    community: bool = True
    quality: bool = True
    smoothing: float = 20.0
    watch_smoothing: float = 7200.0
    min_history: int = 20

    def __post_init__(self) -> None:
        if not self.smoothing > 0:
            raise ValueError(f"smoothing: must be > 0, got {self.smoothing!r}")
        if not self.watch_smoothing > 0:
            raise ValueError(f"watch_smoothing: must be > 0, got {self.watch_smoothing!r}")
        if self.min_history < 0:
            raise ValueError(f"min_history: must be >= 0, got {self.min_history!r}")

    @classmethod
    def non_personal(cls) -> FeatureConfig:
        """Image-only features (theme, quality, overall lift): the best image per title."""
        return cls(personal=False, context=False)


@dataclass(frozen=True, eq=False)
class HistoryTables:
    """Derived per-member, per-artwork and per-cluster tables (see the module docstring)."""

    tau: np.ndarray        # (M, n_themes)
    share: np.ndarray      # (M, n_themes)
    gtheme: np.ndarray     # (M, n_themes)
    cluster: np.ndarray    # (M,)
    art_lift: np.ndarray   # (A,)
    clu_lift: np.ndarray   # (C, A)


class ArtworkHistory:
    """Counts of impressions, plays and watch time by member x theme, member x genre, artwork
    and similar-members cluster x artwork; :meth:`update` adds rows, :meth:`features` reads."""

    def __init__(self, catalog: ArtworkCatalog, n_members: int,
                 config: FeatureConfig | None = None) -> None:
        if n_members < 1:
            raise ValueError(f"n_members: must be >= 1, got {n_members!r}")
        self.catalog, self.n_members = catalog, int(n_members)
        self.config = config or FeatureConfig()
        th, G, A = catalog.n_themes, catalog.genre_onehot.shape[1], catalog.n_artworks
        self.n_clusters = th + 1                      # one per theme, plus "not enough history"
        self.mem_imp = np.zeros((n_members, th))
        self.mem_play = np.zeros((n_members, th))
        self.mem_watch = np.zeros((n_members, th))
        self.mem_genre = np.zeros((n_members, G))
        self.art_imp = np.zeros(A)
        self.art_play = np.zeros(A)
        self.clu_imp = np.zeros((self.n_clusters, A))
        self.clu_play = np.zeros((self.n_clusters, A))
        self._tables: HistoryTables | None = None
        self.feature_names = self._names()

    # ------------------------------------------------------------------ counts
    def update(self, rows: ArtworkRows) -> ArtworkHistory:
        """Add ``rows`` (their members join clusters by their lifts after the update)."""
        cat = self.catalog
        if len(rows) == 0:
            return self
        if rows.member.max() >= self.n_members or rows.member.min() < 0:
            raise ValueError(f"rows.member: indices must lie in 0..{self.n_members - 1}")
        if rows.artwork.max() >= cat.n_artworks:
            raise ValueError("rows.artwork: index outside the catalogue")
        m, a = rows.member, rows.artwork
        th = cat.theme[a]
        r = rows.play.astype(float)
        w = np.where(rows.play > 0, rows.watch_seconds, 0.0)
        M, n_th = self.n_members, cat.n_themes
        key = m * n_th + th
        self.mem_imp += np.bincount(key, minlength=M * n_th).reshape(M, n_th)
        self.mem_play += np.bincount(key, weights=r, minlength=M * n_th).reshape(M, n_th)
        self.mem_watch += np.bincount(key, weights=w, minlength=M * n_th).reshape(M, n_th)
        gw = cat.genre_mean[rows.title] * w[:, None]
        for g in np.flatnonzero(gw.any(axis=0)):
            self.mem_genre[:, g] += np.bincount(m, weights=gw[:, g], minlength=M)
        A = cat.n_artworks
        self.art_imp += np.bincount(a, minlength=A)
        self.art_play += np.bincount(a, weights=r, minlength=A)
        self._tables = None
        ck = self.tables().cluster[m] * A + a
        self.clu_imp += np.bincount(ck, minlength=self.n_clusters * A).reshape(-1, A)
        self.clu_play += np.bincount(ck, weights=r, minlength=self.n_clusters * A).reshape(-1, A)
        self._tables = None
        return self

    def tables(self) -> HistoryTables:
        """The smoothed tables of the module docstring (cached until the next update)."""
        if self._tables is not None:
            return self._tables
        cfg, cat = self.config, self.catalog
        k = cfg.smoothing
        r_bar = (self.art_play.sum() + 1.0) / (self.art_imp.sum() + 20.0)
        n_m, p_m = self.mem_imp.sum(axis=1), self.mem_play.sum(axis=1)
        r_m = (p_m + k * r_bar) / (n_m + k)
        r_mt = (self.mem_play + k * r_m[:, None]) / (self.mem_imp + k)
        tau = np.log(r_mt / r_m[:, None])
        w_m = self.mem_watch.sum(axis=1)
        expo = self.mem_imp / np.maximum(n_m, 1.0)[:, None]
        share = (self.mem_watch - w_m[:, None] * expo) / (w_m + cfg.watch_smoothing)[:, None]
        gw = self.mem_genre @ cat.genre_theme
        gtheme = gw / (self.mem_genre.sum(axis=1) + cfg.watch_smoothing)[:, None]
        cluster = np.where(n_m >= max(cfg.min_history, 1), tau.argmax(axis=1),
                           self.n_clusters - 1)
        starts = cat.art_offset[:-1]
        n_t = np.add.reduceat(self.art_imp, starts)
        p_t = np.add.reduceat(self.art_play, starts)
        r_t = ((p_t + k * r_bar) / (n_t + k))[cat.art_title]
        r_a = (self.art_play + k * r_t) / (self.art_imp + k)
        art_lift = np.log(r_a / r_t)
        clu_lift = np.log((self.clu_play + k * r_a) / (self.clu_imp + k) / r_a)
        self._tables = HistoryTables(tau, share, gtheme, cluster, art_lift, clu_lift)
        return self._tables

    # ------------------------------------------------------------------ features
    def _names(self) -> list[str]:
        cfg, themes = self.config, self.catalog.theme_names
        names = [f"theme={t}" for t in themes]
        if cfg.quality:
            names.append("quality")
        if cfg.community:
            names.append("image_lift")
        if cfg.personal:
            names += [f"member_lift*theme={t}" for t in themes]
            names += ["member_watch_share", "member_genre_theme"]
            if cfg.community:
                names.append("similar_members_image_lift")
        if cfg.context:
            names += [f"device={d}*theme={t}" for d in DEVICES for t in themes]
        return names

    @property
    def dim(self) -> int:
        return len(self.feature_names)

    def features(self, member: np.ndarray, device: np.ndarray, artwork: np.ndarray,
                 tables: HistoryTables | None = None) -> np.ndarray:
        """``phi`` of shape ``artwork.shape + (d,)``; ``member`` and ``device`` are ``(n,)`` and
        index the first axis of ``artwork`` (global artwork indices, any trailing shape)."""
        a = np.asarray(artwork, dtype=np.int64)
        member = np.asarray(member, dtype=np.int64)
        device = np.asarray(device, dtype=np.int64)
        if member.shape != a.shape[:1] or device.shape != a.shape[:1]:
            raise ValueError(f"member, device: expected shape {a.shape[:1]}, got "
                             f"{member.shape}, {device.shape}")
        rep = a.size // max(member.size, 1)
        cols, vals = self.sparse_features(np.repeat(member, rep), np.repeat(device, rep),
                                          a.reshape(-1), tables)
        out = np.zeros((a.size, self.dim))
        out[np.arange(a.size)[:, None], cols] = vals   # the columns of a row are distinct
        return out.reshape(*np.shape(artwork), self.dim)

    def sparse_features(self, member: np.ndarray, device: np.ndarray, artwork: np.ndarray,
                        tables: HistoryTables | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The nonzero part of :meth:`features` for ``(n,)`` arrays of (member, device,
        artwork) triples: ``(cols, vals)``, each ``(n, k)``, with ``phi[i, cols[i, j]] =
        vals[i, j]`` and every other feature 0 (``k`` = one column per feature group: the
        theme one-hot, quality, community, the personal four, device x theme; distinct
        within a row). Scores and variances then cost ``k`` and ``k**2`` products a row, not
        ``d`` and ``d**2``."""
        cfg, cat = self.config, self.catalog
        tab = tables or self.tables()
        a = np.asarray(artwork, dtype=np.int64)
        mb = np.asarray(member, dtype=np.int64)
        th = cat.theme[a]
        n_th = cat.n_themes
        cols: list[np.ndarray] = [th]                                # theme one-hot
        vals: list[np.ndarray] = [np.ones(a.size)]
        col = n_th

        def const(values: np.ndarray) -> None:
            nonlocal col
            cols.append(np.full(a.size, col, dtype=np.int64))
            vals.append(values)
            col += 1

        if cfg.quality:
            const(cat.quality[a])
        if cfg.community:
            const(tab.art_lift[a])
        if cfg.personal:
            cols.append(col + th)                                    # e_theme * tau_m
            vals.append(tab.tau[mb, th])
            col += n_th
            const(tab.share[mb, th])
            const(tab.gtheme[mb, th])
            if cfg.community:
                const(tab.clu_lift[tab.cluster[mb], a])
        if cfg.context:                                              # device x theme one-hot
            cols.append(col + np.asarray(device, dtype=np.int64) * n_th + th)
            vals.append(np.ones(a.size))
        return np.stack(cols, axis=1), np.stack(vals, axis=1).astype(np.float64)

    def row_features(self, rows: ArtworkRows, tables: HistoryTables | None = None) -> np.ndarray:
        """``(m, d)`` features of logged rows from this history as it stands."""
        return self.features(rows.member, rows.device, rows.artwork, tables)

    def cross_fitted(self, rows: ArtworkRows, n_folds: int = 5, chunk: int = 200_000):
        """Yield ``(index, phi)`` for every fold: the features of the rows of fold ``f``
        (folds by ``visit % n_folds``) from a history of the other folds only."""
        if n_folds < 2:
            raise ValueError(f"n_folds: must be >= 2, got {n_folds!r}")
        fold = rows.visit % n_folds
        for f in range(n_folds):
            other = ArtworkHistory(self.catalog, self.n_members, self.config)
            other.update(rows.take(fold != f))
            tab = other.tables()
            idx = np.flatnonzero(fold == f)
            for lo in range(0, idx.size, chunk):
                sub = idx[lo:lo + chunk]
                yield sub, other.features(rows.member[sub], rows.device[sub],
                                          rows.artwork[sub], tab)
