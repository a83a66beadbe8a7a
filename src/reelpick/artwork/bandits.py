r"""Contextual bandits that choose a title's image per member and context, with exact propensities.

Every policy shares one ridge regression of the play on the features
:math:`\phi = \phi(m, t, a, x)` of :mod:`reelpick.artwork.features` (a shared-parameter linear
bandit, so what is learnt on one title's images transfers to all titles):

.. math::

    A = \lambda I + \sum_i \phi_i \phi_i^\top, \quad b = \sum_i r_i \phi_i, \quad
    \hat\theta = A^{-1} b, \quad \mu_a = \hat\theta^\top \phi_a, \quad
    \sigma_a = \sqrt{\phi_a^\top A^{-1} \phi_a},

with :math:`r_i` the play of impression :math:`i` credited to its image (see
:mod:`reelpick.artwork.feedback`). For title :math:`t` with variants :math:`1..n_t` and
exploration rate :math:`\varepsilon` (uniform over the variants), the image probabilities are

* :class:`EpsilonGreedyArtwork`:
  :math:`(1 - \varepsilon)[a = \arg\max_j \mu_j] + \varepsilon / n_t`;
* :class:`LinUCBArtwork`:
  :math:`(1 - \varepsilon)[a = \arg\max_j (\mu_j + \alpha\sigma_j)] + \varepsilon / n_t`;
* :class:`ThompsonArtwork`: :math:`(1 - \varepsilon)\,P(a = \arg\max_j X_j) + \varepsilon / n_t`
  with :math:`X_j \sim N(\mu_j, v^2\sigma_j^2)` independent.

Ties go to the lowest variant. Thompson sampling scores each variant with its own marginal
posterior, independently (as :class:`reelpick.policies.ThompsonSamplingPolicy` does for
titles), so its win probability is a one-dimensional integral, computed within 1e-9 by
:func:`~reelpick.artwork.argmax.normal_argmax_probabilities` for a whole page at once; the
shown variant is then drawn from those probabilities (probability matching), so the logged
propensity is exactly the probability of the draw.

References: L. Li, W. Chu, J. Langford, R. Schapire, "A contextual-bandit approach to
personalized news article recommendation", WWW 2010 (LinUCB, shared features); S. Agrawal,
N. Goyal, "Thompson sampling for contextual bandits with linear payoffs", ICML 2013;
F. Amat, A. Chandrashekar, T. Jebara, J. Basilico, "Artwork personalization at Netflix",
RecSys 2018.

``fit(rows)`` starts over and learns in batch with cross-fitted features (each fold's features
from the other folds' history); ``partial_fit(rows)`` learns online: features from the history
before the rows, then the rows join the history. An unfitted bandit is the prior
(:math:`\hat\theta = 0`): the greedy policies then pick variant 0 (ties), Thompson sampling
draws from the prior.

Example
-------
>>> import numpy as np
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.policies import UniformPolicy
>>> from reelpick.artwork import ArtworkCatalog, ArtworkRows
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> cat = ArtworkCatalog.from_world(world)
>>> pages = world.simulate(UniformPolicy(), 300).logged_pages()
>>> rows = ArtworkRows.from_pages(pages, cat.art_offset, world.members()["member_id"])
>>> ts = ThompsonArtwork(cat, world.config.n_members).fit(rows)
>>> vb = world.make_visits([0, 1], world.config.start + 3600)
>>> p = ts.probabilities(vb, np.array([[0, 1], [2, -1]]))
>>> np.allclose(p.sum(axis=2), [[1, 1], [1, 0]])
True
>>> choice = ts.select(vb, np.array([[0, 1], [2, -1]]), np.random.default_rng(0))
>>> choice.artworks.shape, bool((choice.propensity > 0).all())
((2, 2), True)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reelpick.artwork.argmax import normal_argmax_probabilities
from reelpick.artwork.catalog import ArtworkCatalog
from reelpick.artwork.features import ArtworkHistory, FeatureConfig
from reelpick.artwork.feedback import ArtworkRows
from reelpick.artwork.selector import ArtworkSelectorBase
from reelpick.data.vocab import Vocabulary
from reelpick.decision.tables import LoggedPages


@dataclass(frozen=True)
class ArtworkBanditConfig:
    """``l2`` ridge prior precision :math:`\\lambda`; ``epsilon`` uniform exploration share;
    ``alpha`` LinUCB width; ``noise`` Thompson posterior scale :math:`v` (the sd of a play:
    :math:`\\sqrt{p(1-p)} \\approx 0.2` at a 5 % take rate); ``n_folds`` folds of the
    cross-fitted batch features."""

    l2: float = 1.0
    epsilon: float = 0.0
    alpha: float = 1.0
    noise: float = 0.25
    n_folds: int = 5

    def __post_init__(self) -> None:
        if not (isinstance(self.l2, (int, float)) and self.l2 > 0):
            raise ValueError(f"l2: must be > 0, got {self.l2!r}")
        if not (isinstance(self.epsilon, (int, float)) and 0 <= self.epsilon <= 1):
            raise ValueError(f"epsilon: must lie in [0, 1], got {self.epsilon!r}")
        if not (isinstance(self.alpha, (int, float)) and self.alpha >= 0):
            raise ValueError(f"alpha: must be >= 0, got {self.alpha!r}")
        if not (isinstance(self.noise, (int, float)) and self.noise > 0):
            raise ValueError(f"noise: must be > 0, got {self.noise!r}")
        if isinstance(self.n_folds, bool) or not isinstance(self.n_folds, int) \
                or self.n_folds < 2:
            raise ValueError(f"n_folds: must be an integer >= 2, got {self.n_folds!r}")


class _LinearArtworkBandit(ArtworkSelectorBase):
    """Shared state and learning (ridge regression on artwork features)."""

    name = "artwork-bandit"
    version = "v1"
    catalog: ArtworkCatalog
    config: ArtworkBanditConfig

    def __init__(self, catalog: ArtworkCatalog, n_members: int, *,
                 features: FeatureConfig | None = None, l2: float = 1.0,
                 epsilon: float = 0.0, alpha: float = 1.0, noise: float = 0.25,
                 n_folds: int = 5, name: str | None = None) -> None:
        if not isinstance(catalog, ArtworkCatalog):
            raise TypeError(f"catalog: expected an ArtworkCatalog, got {type(catalog).__name__}")
        self.catalog = catalog
        self.config = ArtworkBanditConfig(l2=l2, epsilon=epsilon, alpha=alpha, noise=noise,
                                          n_folds=n_folds)
        self.features = features or FeatureConfig()
        self.n_members = int(n_members)
        if name is not None:
            self.name = name
        self._memo: dict[int, np.ndarray] | None = None
        self._memo_max = 0
        # whole pages: (member, device, the page's titles) -> (S, V), for repeat pages
        self._page_memo: dict[tuple[int, int, str, bytes], np.ndarray] = {}
        self._page_memo_max = 0
        self._reset()

    def _reset(self) -> None:
        self.history_ = ArtworkHistory(self.catalog, self.n_members, self.features)
        d = self.history_.dim
        self.A_ = np.eye(d) * self.config.l2
        self.b_ = np.zeros(d)
        self.n_obs_ = 0
        self._solve()

    def memoize(self, max_entries: int = 500_000, max_pages: int = 4_096) -> None:
        """Remember the image distribution of every (member, device, title) asked for until
        the next update (:meth:`fit`, :meth:`partial_fit` clear it): serving a fixed bandit
        then costs a lookup per slot; the distribution and the draws are unchanged. The
        distributions of the last ``max_pages`` whole pages (member, device and the page's
        titles) are remembered too: a repeat page costs one lookup."""
        self._memo, self._memo_max = {}, int(max_entries)
        self._page_memo, self._page_memo_max = {}, int(max_pages)

    def _solve(self) -> None:
        if self._memo:  # a new posterior: forget the remembered distributions
            self._memo = {}
        self._page_memo = {}
        self.A_inv_ = np.linalg.inv(self.A_)
        self.A_inv_ = 0.5 * (self.A_inv_ + self.A_inv_.T)
        self.theta_ = self.A_inv_ @ self.b_

    @property
    def feature_names(self) -> list[str]:
        return list(self.history_.feature_names)

    # ------------------------------------------------------------------ learning
    def _add(self, phi: np.ndarray, r: np.ndarray) -> None:
        self.A_ += phi.T @ phi
        self.b_ += phi.T @ r
        self.n_obs_ += int(r.size)

    def fit(self, rows: ArtworkRows) -> _LinearArtworkBandit:
        """Forget everything; learn from ``rows`` with cross-fitted features; the history
        then holds all ``rows``. Returns ``self``."""
        _check_rows(rows)
        self._reset()
        r = rows.play.astype(float)
        for idx, phi in self.history_.cross_fitted(rows, self.config.n_folds):
            self._add(phi, r[idx])
        self.history_.update(rows)
        self._solve()
        return self

    def partial_fit(self, rows: ArtworkRows) -> _LinearArtworkBandit:
        """Add ``rows`` online: features from the history before them, then update the model
        and the history. Returns ``self``."""
        _check_rows(rows)
        if len(rows):
            self._add(self.history_.row_features(rows), rows.play.astype(float))
            self.history_.update(rows)
            self._solve()
        return self

    def fit_pages(self, pages: LoggedPages, members: Vocabulary | Sequence[str], *,
                  partial: bool = False) -> _LinearArtworkBandit:
        """Learn from logged pages (every shown slot with a known artwork;
        :meth:`ArtworkRows.from_pages`, ``members`` the bandit's member order)."""
        rows = ArtworkRows.from_pages(pages, self.catalog.art_offset, members)
        return self.partial_fit(rows) if partial else self.fit(rows)

    # ------------------------------------------------------------------ prediction
    def posterior(self, member: np.ndarray, device: np.ndarray, titles: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, sd, valid)``, each ``(n, S, V)``: :math:`\\mu_a`, :math:`\\sigma_a` and
        whether variant ``a`` exists, for every variant of ``titles (n, S)`` (``-1`` = empty)."""
        mean, sd, valid = self._posterior(member, device, titles, need_sd=True)
        return mean, sd, valid  # type: ignore[return-value]

    def _posterior(self, member: np.ndarray, device: np.ndarray, titles: np.ndarray, *,
                   need_sd: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Mean and sd of the existing variants from their sparse features (a few nonzeros
        of ``d``: ``k`` products for the mean, ``k**2`` for the variance; padded variants
        get mean 0 and sd 1e-9, which callers mask with ``valid``)."""
        glob, valid = self.catalog.pad(titles)
        member = np.asarray(member, dtype=np.int64)
        per = valid[0].size if len(valid) else 0                   # variants per visit
        at = np.flatnonzero(valid.reshape(-1))
        cols, vals = self.history_.sparse_features(
            member[at // per], np.asarray(device, dtype=np.int64)[at // per],
            glob.reshape(-1)[at])
        mean = np.zeros(valid.shape)
        mean.reshape(-1)[at] = np.einsum("pk,pk->p", vals, self.theta_[cols])
        if not need_sd:
            return mean, None, valid
        q = _quadratic_forms(self.A_inv_, cols, vals)
        sd = np.full(valid.shape, 1e-9)
        sd.reshape(-1)[at] = np.sqrt(np.maximum(q, 1e-18))
        return mean, sd, valid

    def _base(self, member: np.ndarray, device: np.ndarray, titles: np.ndarray,
              rng: np.random.Generator | None, once: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError


class EpsilonGreedyArtwork(_LinearArtworkBandit):
    """The image with the highest expected play, and with probability ``epsilon`` a uniformly
    random image of the title (module docstring)."""

    name = "artwork-egreedy"

    def __init__(self, catalog: ArtworkCatalog, n_members: int, *, epsilon: float = 0.1,
                 **kw: object) -> None:
        super().__init__(catalog, n_members, epsilon=epsilon, **kw)  # type: ignore[arg-type]

    def _base(self, member, device, titles, rng, once=None):
        mean, _, valid = self._posterior(member, device, titles, need_sd=False)
        return _onehot_argmax(np.where(valid, mean, -np.inf), valid), None


class LinUCBArtwork(_LinearArtworkBandit):
    """The image with the highest upper confidence bound :math:`\\mu + \\alpha\\sigma`
    (deterministic unless ``epsilon > 0``; module docstring)."""

    name = "artwork-linucb"

    def _base(self, member, device, titles, rng, once=None):
        mean, sd, valid = self.posterior(member, device, titles)
        ucb = mean + self.config.alpha * sd
        return _onehot_argmax(np.where(valid, ucb, -np.inf), valid), None


class ThompsonArtwork(_LinearArtworkBandit):
    """Thompson sampling over a title's images with exact win probabilities (module
    docstring).

    The propensity of variant ``a`` is :math:`P(a = \\arg\\max_j X_j)`, the integral of
    :func:`~reelpick.artwork.argmax.normal_argmax_probabilities` (within 1e-9). ``select`` draws
    the variant **from these probabilities** (one uniform number per title, inverse CDF) rather
    than by sampling the scores and taking the largest: the same distribution up to that
    tolerance (probability matching, which is what Thompson sampling is), and it makes the
    logged propensity exactly the probability with which the shown image was drawn."""

    name = "artwork-thompson"

    def _win_probabilities(self, member: np.ndarray, device: np.ndarray, titles: np.ndarray
                           ) -> np.ndarray:
        mean, sd, valid = self.posterior(member, device, titles)
        shown = valid.any(axis=2)
        probs = np.zeros(mean.shape)
        if shown.any():
            mu = np.where(valid, mean, -np.inf)[shown]
            probs[shown] = normal_argmax_probabilities(
                mu, np.where(valid, self.config.noise * sd, 1.0)[shown])
        return probs

    @property
    def remembers_pages(self) -> bool:
        """Whether image distributions are remembered (:meth:`memoize`): then ``select``
        takes ``once=``, the pages shown once, whose distributions are not remembered."""
        return self._memo is not None

    def _base(self, member, device, titles, rng, once=None):
        titles = np.asarray(titles)
        member, device = np.asarray(member), np.asarray(device)
        if self._memo is None:
            probs = self._win_probabilities(member, device, titles)
        elif once is not None and once.any():  # pages shown once: computed, not remembered
            probs = np.empty((*titles.shape, int(self.catalog.max_variants)))
            keep = ~once
            if keep.any():
                probs[keep] = self._memo_probabilities(member[keep], device[keep], titles[keep])
            probs[once] = self._win_probabilities(member[once], device[once], titles[once])
        else:
            probs = self._memo_probabilities(member, device, titles)
        shown = probs.any(axis=2)
        draw = None if rng is None else _draw(probs, rng.random(shown.shape))
        return probs, draw

    def _memo_probabilities(self, member: np.ndarray, device: np.ndarray, titles: np.ndarray
                            ) -> np.ndarray:
        """The win probabilities from the memo (:meth:`memoize`): whole repeat pages from the
        page memo, the others from the (member, device, title) memo."""
        assert self._memo is not None
        n, S = titles.shape
        V = int(self.catalog.max_variants)
        pm = self._page_memo
        pkeys = _page_keys(member, device, titles)
        hits = [pm.get(k) for k in pkeys]
        probs = np.empty((n, S, V))
        for i, h in enumerate(hits):
            if h is not None:
                probs[i] = h
        todo = np.array([i for i, h in enumerate(hits) if h is None], dtype=np.int64)
        if todo.size:
            new = self._triple_probabilities(member[todo], device[todo], titles[todo])
            probs[todo] = new
            if self._page_memo_max > 0:  # rows of ``new``, which is not handed out
                for j, i in enumerate(todo.tolist()):
                    pm[pkeys[i]] = new[j]
                if len(pm) > self._page_memo_max:
                    self._page_memo = _newest(pm, self._page_memo_max)
        return probs

    def win_probabilities(self, member: np.ndarray, device: np.ndarray, titles: np.ndarray
                          ) -> np.ndarray:
        """``(n, S, V)`` Thompson win probabilities of the images of ``titles (n, S)`` (-1
        empty: zeros) for members and devices ``(n,)``, before any epsilon mixing: the
        distribution :meth:`select` draws from; from the memo after :meth:`memoize`."""
        member = np.asarray(member, dtype=np.int64)
        self._check_members(member)
        titles = np.asarray(titles, dtype=np.int64)
        if self._memo is None:
            return self._win_probabilities(member, np.asarray(device), titles)
        return self._memo_probabilities(member, np.asarray(device), titles)

    def remember_pages(self, member: np.ndarray, device: np.ndarray, titles: np.ndarray,
                       probs: np.ndarray) -> None:
        """Remember ``probs (n, S, V)`` (:meth:`win_probabilities` computed elsewhere, e.g.
        by another process) as the distributions of whole pages ``titles (n, S)`` for members
        and devices ``(n,)``: a later :meth:`select` of such a page draws from them. Needs
        :meth:`memoize`."""
        if self._memo is None:
            raise ValueError("remember_pages: the bandit does not memoize (call memoize())")
        titles = np.asarray(titles, dtype=np.int64)
        V = int(self.catalog.max_variants)
        if probs.shape != (*titles.shape, V):
            raise ValueError(f"probs: expected shape {(*titles.shape, V)}, got {probs.shape}")
        pm = self._page_memo
        for k, p in zip(_page_keys(np.asarray(member), np.asarray(device), titles), probs):
            pm[k] = p
        if len(pm) > self._page_memo_max:
            self._page_memo = _newest(pm, self._page_memo_max)

    def _triple_probabilities(self, member: np.ndarray, device: np.ndarray,
                              titles: np.ndarray) -> np.ndarray:
        """The win probabilities from the (member, device, title) memo, computing the missing
        triples in one batch."""
        assert self._memo is not None
        n, S = titles.shape
        shown = titles >= 0
        T = int(self.catalog.n_titles)
        keys = ((member.astype(np.int64)[:, None] * 64 + device.astype(np.int64)[:, None]) * T
                + titles)[shown]
        uniq, inv = np.unique(keys, return_inverse=True)
        ul = uniq.tolist()
        get = self._memo.get
        rows = [get(k) for k in ul]
        V = int(self.catalog.max_variants)
        table = np.empty((len(ul), V))
        miss = np.array([i for i, r in enumerate(rows) if r is None], dtype=np.int64)
        if miss.size < len(ul):
            hit = np.array([i for i, r in enumerate(rows) if r is not None], dtype=np.int64)
            table[hit] = np.stack([rows[i] for i in hit.tolist()])  # type: ignore[misc]
        if miss.size:
            k = uniq[miss]
            t, md = k % T, k // T
            p = self._win_probabilities(md // 64, md % 64, t[:, None])[:, 0, :]
            table[miss] = p
            self._memo.update(zip(k.tolist(), p))      # rows of ``p``, never handed out
            if len(self._memo) > self._memo_max:
                self._memo = _newest(self._memo, self._memo_max)
        probs = np.zeros((n, S, V))
        probs[shown] = table[inv]
        return probs


def _page_keys(member: np.ndarray, device: np.ndarray, titles: np.ndarray
               ) -> list[tuple[int, int, str, bytes]]:
    """The page memo's key of each page: member, device and the page's titles."""
    kind = titles.dtype.str
    return [(int(m), int(d), kind, row.tobytes())
            for m, d, row in zip(member.tolist(), device.tolist(), titles)]


def _quadratic_forms(A: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """``q[p] = v' A[c, c] v`` with ``c = cols[p]``, ``v = vals[p]`` (sparse feature rows).
    Rows that share their columns share one ``(k, k)`` block of ``A`` (the columns depend on
    the image's theme and the device only: a few dozen blocks for thousands of rows), so the
    blocks are gathered once and each row costs one small matrix-vector product."""
    dim, k = A.shape[0], cols.shape[1]
    if len(cols) == 0:
        return np.zeros(0)
    if k * np.log2(max(dim, 2)) < 62:               # the columns as one integer key
        key = cols @ (dim ** np.arange(k, dtype=np.int64))
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        blocks = A[cols[first][:, :, None], cols[first][:, None, :]][inv.reshape(-1)]
    else:  # pragma: no cover - feature spaces far larger than any configured here
        blocks = A[cols[:, :, None], cols[:, None, :]]
    return np.einsum("pk,pk->p", np.matmul(blocks, vals[:, :, None])[:, :, 0], vals)


def _newest(memo: dict[Any, np.ndarray], max_entries: int) -> dict[Any, np.ndarray]:
    """The newest three quarters of ``max_entries`` of ``memo`` (in insertion order), as a new
    dict: dropping the oldest entries in one rebuild costs O(1) per entry, where popping them
    one by one from the front costs O(entries popped so far) each (a dict's iteration skips
    the slots left by deletions), which made eviction most of a served page's CPU."""
    keep = max(1, (3 * max_entries) // 4)
    return dict(itertools.islice(memo.items(), len(memo) - keep, None))


def _onehot_argmax(score: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(n, S, V)`` one-hot of the best valid variant (ties: lowest index); zeros where no
    variant is valid."""
    best = np.argmax(score, axis=2)
    out = np.zeros(score.shape)
    np.put_along_axis(out, best[..., None], 1.0, axis=2)
    return out * valid.any(axis=2, keepdims=True)


def _draw(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw from ``probs (..., V)`` with uniforms ``u (...)``: the first variant
    whose cumulative probability exceeds ``u`` (never one of probability 0; 0 where a row is
    all zeros)."""
    cdf = np.cumsum(probs, axis=-1)
    total = cdf[..., -1:]
    cdf = cdf / np.where(total > 0, total, 1.0)               # the last entry is exactly 1
    k = (cdf <= u[..., None]).sum(axis=-1)
    return np.where(total[..., 0] > 0, np.minimum(k, probs.shape[-1] - 1), 0)


def _check_rows(rows: ArtworkRows) -> None:
    if not isinstance(rows, ArtworkRows):
        raise TypeError(f"rows: expected ArtworkRows, got {type(rows).__name__}")
