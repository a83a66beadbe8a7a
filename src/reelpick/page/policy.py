r"""The one page policy: sources -> ranker -> rows -> exploration -> artwork, saved as a directory.

:class:`PagePolicy` is what reelpick ships. It is trained from logged tables
(:func:`train_page_policy`: impressions + outcomes + titles, optionally artworks and
interactions — the schema the service exports and ``reelpick simulate`` writes), saved to and
loaded from one pickle-free directory (:meth:`PagePolicy.save`, :meth:`PagePolicy.load`),
served by :class:`reelpick.serve.PagePolicyProvider`, simulated by the world (it is a
:class:`~reelpick.decision.Policy`) and evaluated offline on the logs it produced.

For each visit:

1. **Candidates and scores**: every candidate source (ALS, item-kNN, trending in the visit's
   context, continue watching, because you watched) scores the catalogue; the LightGBM ranker
   predicts p(play | member, title, context) for the union of their best titles
   (:class:`~reelpick.ranking.PageComposer`).
2. **Rows**: context-shaped rows ordered by their examination-weighted value.
3. **Exploration**: with probability :math:`\epsilon` per visit the page is a uniformly random
   page of the available titles, so the propensity of the title in slot :math:`s` is exactly
   :math:`\epsilon / A_v + (1 - \epsilon)[t = b_s(v)]`
   (:class:`~reelpick.policies.ExploringPolicy`).
4. **Artwork**: a Thompson-sampling bandit over each title's images (exact propensities), or
   uniform images, or the first image (:mod:`reelpick.artwork`).

Training is time-respecting (as :mod:`reelpick.ranking.training`): sources and features come
from the history before ``c1``, the ranker learns from the impressions in ``[c1, c2)`` and the
served sources are refitted on everything before ``c2`` (the end of the logs).

Directory layout (``FORMAT`` 1, every file written once, no pickle)::

    policy.json          config, version, time window, source names, member IDs
    catalog.json         titles, artworks, countries (the service's catalogue)
    titles.parquet       the titles table; artworks.parquet when images are known
    history.parquet      the plays the sources are fitted on (before c2)
    sources/<name>.npz   fitted recommenders (reelpick.models format)
    ranker/              LightGBM text model + JSON header
    artwork.npz          the artwork bandit's sufficient statistics

Example
-------
>>> import numpy as np
>>> from reelpick.world import PromotionPolicy, World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> log = world.simulate(PromotionPolicy(), 1500)
>>> policy = train_page_policy(log.impressions(), log.outcomes(), world.titles(),
...     artworks=world.artworks(), interactions=log.interactions(),
...     config=PagePolicyConfig(n_rows=2, n_positions=5, trees=20))
>>> page = policy.for_members(world.members()["member_id"], world.config.countries).choose(
...     world.make_visits([0, 1], world.config.start + 5 * 86_400), np.random.default_rng(0))
>>> # the world's visits ask for its page layout; the service's for the config's
>>> page.titles.shape == (2, world.config.page_rows * world.config.page_positions)
True
>>> bool(((page.propensity > 0) & (page.propensity <= 1)).all())
True
>>> visits = policy.visits(["m1", "m2"], timestamp=np.full(2, world.config.start + 86_400),
...     device=np.zeros(2), country=np.zeros(2), hour=np.full(2, 20),
...     day_of_week=np.full(2, 4))
>>> policy.precompute(visits), policy.precompute(visits)   # composed ahead, then remembered
(2, 0)
>>> import tempfile
>>> from reelpick.page.store import PageStore
>>> d = policy.save(tempfile.mkdtemp())     # pages are stored under the saved version
>>> store = PageStore(Path(tempfile.mkdtemp()) / "pages.sqlite3")
>>> policy.precompute(visits, store=store), len(store)   # the nearline job writes them
(0, 2)
>>> served = PagePolicy.load(d)            # a serving process
>>> served.use_store(store)
>>> a, b = (p.choose(visits, np.random.default_rng(1)) for p in (served, policy))
>>> served.cache_info()["stored"], bool((a.titles == b.titles).all())
(2, True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reelpick.data.catalog import catalog_countries, catalog_json
from reelpick.data.schema import DEVICES, INTERACTIONS, TITLES
from reelpick.data.vocab import Vocabulary
from reelpick.decision import Catalog, PageBatch, VisitBatch
from reelpick.decision.tables import LoggedPages, logged_pages
from reelpick.models import available_models
from reelpick.page.implicit import implicit_impressions
from reelpick.page.store import PageStore, StoredPage
from reelpick.policies.cached import CachedPagePolicy
from reelpick.policies.exploring import ExploringPolicy
from reelpick.ranking import (
    DAILY_SEQ_PARAMS,
    BecauseYouWatchedSource,
    Catalogue,
    ContinueWatchingSource,
    FeatureBuilder,
    History,
    ModelSource,
    PageComposer,
    PageConfig,
    Ranker,
    RankerPagePolicy,
    TrendingSource,
    training_set,
)

FORMAT = 1
KIND = "reelpick.page-policy"
#: the member ID of the cold-start slot (members the policy has never seen)
COLD = "__cold__"
ARTWORK_MODES = ("thompson", "uniform", "first")

__all__ = ["COLD", "FORMAT", "KIND", "PagePolicy", "PagePolicyConfig", "train_page_policies",
           "train_page_policy"]


@dataclass(frozen=True)
class PagePolicyConfig:
    """Hyperparameters of :class:`PagePolicy` (validated at construction).

    ``n_rows`` x ``n_positions`` the page; ``epsilon`` the uniform-exploration share of
    visits; ``artwork`` one of :data:`ARTWORK_MODES`; ``als_factors``/``als_iterations``,
    ``knn_neighbors`` the model sources; ``trees``, ``train_rows`` (impressions sampled for the
    ranker) and ``ranker_window`` (the latest share of the logged period the ranker learns
    from; the sources and features see only what came before it); ``per_source`` candidates
    per source; ``context`` (context features in the ranker and trending by country, device
    and daypart; ``False``: neither, trending by country only); ``sequence`` adds the
    sequence model (:mod:`reelpick.models.sequence`, torch) as a candidate source trained for
    ``seq_epochs`` epochs (saved as ``sources/seq.npz``, no pickle). It is off by default:
    its serving cost fits a 50 ms p99 page budget (``BENCHMARKS.md``, section
    ``page-sources``), but it adds a torch training to every fit and, in the closed loop's
    world, the ``ranker+seq`` candidate's true plays per visit are below ``ranker``'s
    (``results.json``: ``releases[].lifts.seq``); ``seed``.
    """

    n_rows: int = 10
    n_positions: int = 20
    epsilon: float = 0.05
    artwork: str = "thompson"
    als_factors: int = 32
    als_iterations: int = 10
    knn_neighbors: int = 100
    trees: int = 100
    train_rows: int = 200_000
    ranker_window: float = 0.5
    per_source: int = 100
    context: bool = True
    sequence: bool = False
    seq_epochs: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        checks = (("n_rows", self.n_rows >= 1), ("n_positions", self.n_positions >= 1),
                  ("epsilon", 0 <= self.epsilon < 1), ("artwork", self.artwork in ARTWORK_MODES),
                  ("als_factors", self.als_factors >= 1),
                  ("als_iterations", self.als_iterations >= 1),
                  ("knn_neighbors", self.knn_neighbors >= 1), ("trees", self.trees >= 1),
                  ("train_rows", self.train_rows >= 1),
                  ("ranker_window", 0 < self.ranker_window < 1),
                  ("per_source", self.per_source >= 1),
                  ("context", isinstance(self.context, bool)),
                  ("sequence", isinstance(self.sequence, bool)),
                  ("seq_epochs", self.seq_epochs >= 1), ("seed", self.seed >= 0))
        for name, ok in checks:
            if not ok:
                extra = f" (use one of {ARTWORK_MODES})" if name == "artwork" else ""
                raise ValueError(f"PagePolicyConfig.{name}: invalid value "
                                 f"{getattr(self, name)!r}{extra}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PagePolicyConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"PagePolicyConfig: unknown field(s) {unknown}")
        return cls(**data)


# ---------------------------------------------------------------------- catalogue facts
def _decision_catalog(titles: pd.DataFrame, artworks: pd.DataFrame | None,
                      catalogue: Catalogue) -> Catalog:
    """What the policy knows of the titles, in the contract's shape."""
    if artworks is not None and len(artworks):
        counts = artworks.groupby("title_id", sort=False).size()
        nv = titles["title_id"].map(counts).fillna(1).to_numpy(dtype=np.int64)
    else:
        nv = np.ones(len(titles), dtype=np.int64)
    return Catalog(n_variants=nv, is_series=catalogue.is_series,
                   duration=catalogue.duration, genre_onehot=catalogue.genre_onehot,
                   art_offset=np.concatenate([[0], np.cumsum(nv)]),
                   popularity=catalogue.popularity)


def _sort_artworks(artworks: pd.DataFrame | None, titles: pd.DataFrame) -> pd.DataFrame | None:
    if artworks is None or not len(artworks):
        return None
    index = {t: i for i, t in enumerate(titles["title_id"])}
    t_idx = artworks["title_id"].map(index)
    if t_idx.isna().any():
        bad = artworks["title_id"][t_idx.isna()].iloc[0]
        raise ValueError(f"artworks: title_id {bad!r} is not in the titles table")
    order = np.argsort(t_idx.to_numpy(), kind="stable")
    return artworks.iloc[order].reset_index(drop=True)


def _artwork_maps(artworks: pd.DataFrame | None
                  ) -> tuple[dict[str, int] | None, dict[str, tuple[int, int]] | None]:
    if artworks is None:
        return None, None
    ids = artworks["artwork_id"].astype(str).tolist()
    index = {a: i for i, a in enumerate(ids)}
    offset: dict[str, tuple[int, int]] = {}
    for i, t in enumerate(artworks["title_id"].astype(str)):
        lo, n = offset.get(t, (i, 0))
        offset[t] = (lo, n + 1)
    return index, offset


# ---------------------------------------------------------------------- the policy
class PagePolicy:
    """The shipped page policy (module docstring). Build with :func:`train_page_policy` or
    :meth:`load`; a :class:`~reelpick.decision.Policy` over visits whose ``member`` indexes
    :attr:`members` (use :meth:`for_members` for another member order, :meth:`visits` to
    build visits from requests)."""

    def __init__(self, *, config: PagePolicyConfig, composer: PageComposer,
                 titles: pd.DataFrame, artworks: pd.DataFrame | None, catalog: Catalog,
                 members: Vocabulary, selector: Any, info: dict[str, Any],
                 version: str = "unsaved", name: str = "page-policy") -> None:
        self.config, self.composer = config, composer
        self.titles, self.artworks, self.catalog = titles, artworks, catalog
        self.members, self.selector, self.info = members, selector, info
        self.version, self.name = version, name
        self.catalogue: Catalogue = composer.history.catalogue
        self._cold = int(members.index([COLD])[0])
        # the composed page at the start of the visit's hour, remembered per visit key; the
        # artwork bandit's image distributions remembered per (member, device, title): the
        # same policy, served at a lookup's cost for repeated keys (reelpick.policies.cached)
        self._base = CachedPagePolicy(RankerPagePolicy(composer, name=name))
        if selector is not None and hasattr(selector, "memoize"):
            selector.memoize()
        self._explorer = ExploringPolicy(self._base, epsilon=config.epsilon,
                                         artwork=self._artwork_selector(), name=name)
        self._store: PageStore | None = None
        self.stored_hits = 0

    # ------------------------------------------------------------------ serving
    def _artwork_selector(self) -> Any:
        if self.config.artwork == "first" or self.selector is None:
            return _FirstArtwork() if self.config.artwork == "first" else None
        return self.selector

    @property
    def n_titles(self) -> int:
        return len(self.titles)

    def member_index(self, member_ids: Sequence[object] | np.ndarray) -> np.ndarray:
        """``(n,)`` indices into :attr:`members`; unknown members get the cold-start slot."""
        idx = self.members.index(np.asarray(member_ids, dtype=object), missing="negative")
        return np.where(idx >= 0, idx, self._cold)

    def available(self, timestamp: np.ndarray | int) -> np.ndarray:
        """``(n_countries, T)`` titles licensed in each country and released by
        ``timestamp`` (one time for the whole batch: its largest)."""
        ts = int(np.max(timestamp))
        return self.catalogue.available & (self.catalogue.release_ts[None, :] <= ts)

    def visits(self, member_ids: Sequence[object] | np.ndarray, *, timestamp: np.ndarray,
               device: np.ndarray, country: np.ndarray, hour: np.ndarray, day_of_week: np.ndarray,
               cell: np.ndarray | None = None) -> VisitBatch:
        """A :class:`~reelpick.decision.VisitBatch` for requests given by external member IDs
        and context indices (``device`` into ``DEVICES``, ``country`` into the catalogue's
        countries)."""
        n = len(member_ids)
        ts = np.asarray(timestamp, dtype=np.int64).reshape(n)
        return VisitBatch(
            member=self.member_index(member_ids), timestamp=ts,
            device=np.asarray(device, dtype=np.int64).reshape(n),
            country=np.asarray(country, dtype=np.int64).reshape(n),
            hour=np.asarray(hour, dtype=np.int64).reshape(n),
            day_of_week=np.asarray(day_of_week, dtype=np.int64).reshape(n),
            cell=(np.zeros(n, np.int8) if cell is None else np.asarray(cell, np.int8)),
            day=int(ts.max(initial=0) // 86_400), available=self.available(ts),
            catalog=self.catalog, n_rows=self.config.n_rows,
            n_positions=self.config.n_positions)

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        """Pages for ``visits`` (members indexed into :attr:`members`), exact propensities."""
        if self._store is not None:
            self._recall(visits)
        return self._explorer.choose(visits, rng)

    def greedy(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        """The deterministic composed pages (no exploration, first images)."""
        if self._store is not None:
            self._recall(visits)
        return self._base.choose(visits, rng)

    def precompute(self, visits: VisitBatch, store: PageStore | None = None) -> int:
        """Compose and remember the pages of ``visits`` before they are asked for (the nearline
        half of serving): the composed page at the start of each visit's hour (sources,
        ranker, rows) and the image distributions of its titles, drawing nothing. A later
        :meth:`choose` of a visit with the same key (member, device, country, hour, weekday,
        hour bucket, layout) draws only the exploration and the images, and its pages and
        propensities are exactly those it would have had without the precompute (the same
        random numbers give the same page). Returns how many pages were composed (the others
        were remembered already; the module example runs it). Remembered pages are kept up to
        :meth:`cache`'s capacity. The pages are also written to ``store`` (default: the store
        of :meth:`use_store`, which gets those it did not have), where other processes
        serving this version find them."""
        target = store if store is not None else self._store
        found = self._recall(visits) if self._store is not None else np.zeros(len(visits), bool)
        before = self._base.misses
        base = self._base.choose(visits, np.random.default_rng(0))  # deterministic: no draws
        selector = self._memoising_selector()
        probs = None
        if selector is not None:
            probs = selector.win_probabilities(visits.member, visits.device, base.titles)
        if target is not None:
            todo = np.flatnonzero(~found) if target is self._store else np.arange(len(visits))
            target.put(self.version, self._stored_pages(visits, base, probs, todo))
        return self._base.misses - before

    def use_store(self, store: PageStore | None) -> None:
        """Look up, before composing, the pages not remembered here in ``store`` (pages
        composed ahead by another process: ``reelpick precompute --store``, another
        worker), and write the pages :meth:`precompute` composes to it; ``None``: stop.
        A stored page is the one this policy would compose (same version, visit key and
        hour); the exploration and the images are still drawn per request (the module example
        runs it).
        """
        self._store = store

    @property
    def store(self) -> PageStore | None:
        """The store of :meth:`use_store` (``None``: none)."""
        return self._store

    def _memoising_selector(self) -> Any:
        """The artwork bandit when it remembers image distributions (memoized in
        ``__init__``), else ``None``."""
        selector = self._explorer.artwork
        return selector if hasattr(selector, "remember_pages") else None

    def _stored_pages(self, visits: VisitBatch, base: Any, probs: np.ndarray | None,
                      rows: np.ndarray) -> list[StoredPage]:
        """The pages ``rows`` of ``base`` (and their image distributions) as stored pages."""
        keys = self._base.keys(visits)
        labels = getattr(base, "slot_label", None)
        score = getattr(base, "score", None)
        bucket = visits.timestamp // self._base.bucket
        out = []
        for i in rows.tolist():
            t = base.titles[i]
            packed = None
            if probs is not None:
                mask = self._variant_mask(t, probs.shape[2])
                if not probs[i][~mask].any():  # else: not storable, images computed on use
                    packed = probs[i][mask]
            out.append(StoredPage(
                key=_key_bytes(keys[i]), bucket=int(bucket[i]), titles=t,
                labels=None if labels is None else [str(x) for x in labels[i]],
                score=None if score is None else score[i], probs=packed))
        return out

    def _variant_mask(self, titles: np.ndarray, n_variants: int) -> np.ndarray:
        """``(S, V)``: which (slot, image) pairs of a page's ``titles`` exist."""
        nv = np.where(titles >= 0, self.catalog.n_variants[np.maximum(titles, 0)], 0)
        return np.arange(n_variants)[None, :] < nv[:, None]

    def _recall(self, visits: VisitBatch) -> np.ndarray:
        """Remember the stored pages of the visits not remembered here (:meth:`use_store`);
        ``(n,)`` which visits' pages were found in the store."""
        assert self._store is not None
        found = np.zeros(len(visits), dtype=bool)
        keys = self._base.keys(visits)
        want = [i for i, k in enumerate(keys) if k not in self._base]
        if not want:
            return found
        names = [_key_bytes(keys[i]) for i in want]
        stored = self._store.get(self.version, names)
        if not stored:
            return found
        selector = self._memoising_selector()
        S = visits.n_slots
        art: list[tuple[int, np.ndarray, np.ndarray]] = []
        for i, name in zip(want, names):
            page = stored.get(name)
            if page is None or page.titles.size != S:
                continue
            labels = None if page.labels is None else np.array(page.labels, dtype=object)
            self._base.remember(keys[i], (page.titles, labels, page.score))
            found[i] = True
            if selector is not None and page.probs is not None:
                V = int(selector.catalog.max_variants)
                mask = self._variant_mask(page.titles, V)
                if int(mask.sum()) == page.probs.size:
                    p = np.zeros((S, V))
                    p[mask] = page.probs
                    art.append((i, page.titles, p))
        if art:
            idx = np.array([a[0] for a in art])
            selector.remember_pages(visits.member[idx], visits.device[idx],
                                    np.stack([a[1] for a in art]), np.stack([a[2] for a in art]))
        self.stored_hits += int(found.sum())
        return found

    def cache_info(self) -> dict[str, int]:
        """``{"pages": remembered, "hits": ..., "misses": ..., "stored": ...}`` of the
        composed-page cache (hits and misses counted per visit since the policy was built;
        ``stored``: pages found in the :meth:`use_store` store, counted among the hits)."""
        base = self._base
        return {"pages": len(base), "hits": int(base.hits), "misses": int(base.misses),
                "stored": int(self.stored_hits)}

    def cache(self, pages: int) -> None:
        """Remember up to ``pages`` composed pages (one per visit key and hour) and the image
        distributions of as many whole pages (default: 50,000 pages, 4,096 image
        distributions). An image distribution of a page takes ``n_slots x max_variants``
        floats (12.8 kB for 200 slots of up to 8 images)."""
        if isinstance(pages, bool) or not isinstance(pages, int) or pages < 1:
            raise ValueError(f"pages: must be an integer >= 1, got {pages!r}")
        self._base.max_entries = pages
        selector = self._explorer.artwork
        if hasattr(selector, "memoize"):
            selector.memoize(max_pages=pages)  # type: ignore[union-attr]

    def for_members(self, member_ids: Sequence[object] | pd.Series,
                    countries: Sequence[str] | None = None) -> BoundPagePolicy:
        """This policy for visits whose ``member`` indexes ``member_ids`` and whose ``country``
        indexes ``countries`` (e.g. a simulated world's members ``m0, m1, ...`` and
        ``WorldConfig.countries``; default: the policy's own country order). The visits'
        catalogue facts are replaced by the policy's own (what it learnt from the titles
        table), so nothing but the observable context reaches it."""
        cmap = None
        if countries is not None:
            own = {c: i for i, c in enumerate(self.catalogue.countries)}
            missing = [c for c in countries if c not in own]
            if missing:
                raise ValueError(f"countries: {missing} not in the policy's catalogue "
                                 f"{list(self.catalogue.countries)}")
            cmap = np.array([own[c] for c in countries], dtype=np.int64)
        return BoundPagePolicy(self, self.member_index(np.asarray(member_ids, dtype=object)),
                               cmap)

    def logged_pages(self, impressions: pd.DataFrame, outcomes: pd.DataFrame | None = None
                     ) -> LoggedPages:
        """Logged impressions (and outcomes) as :class:`~reelpick.decision.tables.LoggedPages`
        in this policy's title, country and artwork indices (what
        :func:`reelpick.page.evaluate.evaluate_candidates` reads)."""
        index, offset = _artwork_maps(self.artworks)
        return logged_pages(impressions, outcomes, title_ids=self.titles["title_id"].astype(str),
                            countries=self.catalogue.countries, artwork_index=index,
                            artwork_offset=offset)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the policy directory ``path`` (module docstring); returns it. The version is
        the content hash of the name, config and written files."""
        path = Path(path)
        (path / "sources").mkdir(parents=True, exist_ok=True)
        h = self.composer.history
        self.titles.to_parquet(path / "titles.parquet", index=False)
        if self.artworks is not None:
            self.artworks.to_parquet(path / "artworks.parquet", index=False)
        h.interactions.to_parquet(path / "history.parquet", index=False)
        model_sources = []
        for s in self.composer.sources:
            if isinstance(s, ModelSource):
                s.model.save(path / "sources" / f"{s.name}.npz")
                model_sources.append(s.name)
        self.composer.ranker.save(path / "ranker")
        if self.selector is not None:
            np.savez_compressed(path / "artwork.npz", **_bandit_state(self.selector))
        members = pd.DataFrame({"member_id": [m for m in self.members.to_list() if m != COLD]})
        catalog = catalog_json(self.titles, members, self.artworks, h.interactions)
        (path / "catalog.json").write_text(json.dumps(catalog))
        digest = hashlib.sha256(json.dumps([self.name, asdict(self.config)],
                                           sort_keys=True).encode())
        for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != "policy.json"):
            digest.update(f.read_bytes())
        self.version = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + \
            digest.hexdigest()[:8]
        header = {
            "format": FORMAT, "kind": KIND, "version": self.version, "name": self.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": asdict(self.config), "as_of": int(h.as_of),
            "sources": [s.name for s in self.composer.sources], "model_sources": model_sources,
            "members": self.members.to_list(), "info": self.info,
            "countries": list(self.catalogue.countries),
        }
        (path / "policy.json").write_text(json.dumps(header, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> PagePolicy:
        """Read a directory written by :meth:`save` (``ValueError`` naming the file when it is
        not one)."""
        from reelpick.models import load_model

        path = Path(path)
        try:
            header = json.loads((path / "policy.json").read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path / 'policy.json'}: not a reelpick page policy ({exc})"
                             ) from None
        if header.get("kind") != KIND or header.get("format") != FORMAT:
            raise ValueError(f"{path / 'policy.json'}: expected kind {KIND!r} format {FORMAT}, "
                             f"got {header.get('kind')!r} format {header.get('format')!r}")
        config = PagePolicyConfig.from_dict(header["config"])
        titles = pd.read_parquet(path / "titles.parquet")
        art_path = path / "artworks.parquet"
        artworks = pd.read_parquet(art_path) if art_path.exists() else None
        history_frame = pd.read_parquet(path / "history.parquet")
        catalogue = Catalogue.from_frame(titles, countries=header["countries"])
        members = Vocabulary.from_list(header["members"])
        h = History.build(history_frame, catalogue, members=members.to_list(),
                          as_of=header["as_of"])
        loaded = {n: load_model(path / "sources" / f"{n}.npz") for n in header["model_sources"]}
        sources = _make_sources(config, h, loaded)
        ranker = Ranker.load(path / "ranker")
        composer = _composer(config, h, sources, ranker, titles)
        catalog = _decision_catalog(titles, artworks, catalogue)
        selector = None
        if (path / "artwork.npz").exists():
            selector = _load_bandit(path / "artwork.npz", artworks, titles, len(members))
        return cls(config=config, composer=composer, titles=titles, artworks=artworks,
                   catalog=catalog, members=members, selector=selector, info=header["info"],
                   version=header["version"], name=header["name"])


def _key_bytes(key: tuple[int, ...]) -> bytes:
    """A visit key as the page store's key."""
    return np.array(key, dtype="<i8").tobytes()


class BoundPagePolicy:
    """A :class:`PagePolicy` for visits in another member order (:meth:`PagePolicy.for_members`).
    """

    def __init__(self, policy: PagePolicy, member_map: np.ndarray,
                 country_map: np.ndarray | None = None) -> None:
        self.policy, self.member_map, self.country_map = policy, member_map, country_map
        self.name, self.version = policy.name, policy.version

    def map_visits(self, visits: VisitBatch) -> VisitBatch:
        """``visits`` in the policy's member, country and catalogue terms (what
        :meth:`choose` hands the policy)."""
        if visits.catalog.n_titles != self.policy.n_titles:
            raise ValueError(f"visits: {visits.catalog.n_titles} titles, the policy knows "
                             f"{self.policy.n_titles}")
        country = visits.country
        available = visits.available
        if self.country_map is not None:
            country = self.country_map[visits.country]
            available = np.zeros((len(self.policy.catalogue.countries), available.shape[1]),
                                 dtype=bool)
            available[self.country_map] = visits.available
        return dataclasses.replace(visits, member=self.member_map[visits.member],
                                   country=country, available=available,
                                   catalog=self.policy.catalog)

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        return self.policy.choose(self.map_visits(visits), rng)

    def greedy(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        return self.policy.greedy(self.map_visits(visits), rng)


class _FirstArtwork:
    """Always the first image of a title (propensity 1)."""

    name = "first-artwork"

    def select(self, visits: VisitBatch, titles: np.ndarray, rng: np.random.Generator) -> Any:
        from reelpick.artwork.selector import ArtworkChoice

        return ArtworkChoice(np.zeros_like(titles), np.ones(titles.shape))


# ---------------------------------------------------------------------- building blocks
def _make_sources(config: PagePolicyConfig, history: History,
                  fitted: dict[str, Any] | None = None,
                  cache: dict[tuple, Any] | None = None) -> list[Any]:
    """The candidate sources on ``history``; recommenders in ``fitted`` are attached as they
    are (loaded from disk), the others fitted (or taken from ``cache``, keyed by the history's
    ``as_of`` and the source's settings: the same fit)."""
    fitted = fitted or {}
    makers: list[tuple[tuple, Callable[[], Any]]] = [
        (("als", config.als_factors, config.als_iterations, config.seed),
         lambda: ModelSource("als", factors=config.als_factors,
                             iterations=config.als_iterations, num_threads=1,
                             random_state=config.seed)),
        (("itemknn", config.knn_neighbors),
         lambda: ModelSource("itemknn", neighbors=config.knn_neighbors)),
        (("trending", config.context),
         lambda: TrendingSource(by_context=config.context, name="trending")),
        (("continue",), ContinueWatchingSource), (("because",), BecauseYouWatchedSource)]
    if config.sequence:
        if "seq" not in available_models():
            raise ValueError("PagePolicyConfig.sequence: the sequence model is not available "
                             "(torch is not importable)")
        makers.append((("seq", config.seq_epochs, config.seed),
                       lambda: ModelSource("seq", **DAILY_SEQ_PARAMS,
                                           max_epochs=config.seq_epochs, validation=False,
                                           random_state=config.seed)))
    out = []
    for key, make in makers:
        ckey = (int(history.as_of), *key)
        if cache is not None and ckey in cache:
            if cache[ckey] is not None:
                out.append(cache[ckey])
            continue
        s = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if isinstance(s, ModelSource) and s.name in fitted:
                    s = ModelSource.fitted(fitted[s.name], history)
                elif isinstance(s, ModelSource) and fitted:
                    continue  # not saved: it had no opinion when the policy was trained
                else:
                    s = s.fit(history)
            except (ValueError, RuntimeError):
                s = None  # e.g. an empty history: the source has no opinion yet
        if cache is not None:
            cache[ckey] = s
        if s is not None:
            out.append(s)
    return out


def _composer(config: PagePolicyConfig, history: History, sources: list[Any], ranker: Ranker,
              titles: pd.DataFrame) -> PageComposer:
    names = titles["name"].astype(str).tolist() if "name" in titles else None
    fb = FeatureBuilder(history, source_names=[s.name for s in sources],
                        use_context=config.context)
    return PageComposer(history, sources, fb, ranker,
                        PageConfig(n_rows=config.n_rows, n_positions=config.n_positions,
                                   per_source=config.per_source,
                                   n_genre_rows=max(3, config.n_rows - 4)),
                        title_names=names)


def _plays_from_pages(pages: LoggedPages) -> pd.DataFrame:
    """Page plays as an interactions table (when the user gives no interactions)."""
    hit = np.flatnonzero(pages.play > 0)
    v = pages.visit[hit]
    return pd.DataFrame({
        "member_id": pages.member_id[v], "title_id": np.asarray(pages.title_ids)[pages.title[hit]],
        "timestamp": pages.timestamp[v], "watch_seconds": pages.watch_seconds[hit],
        "device": np.asarray(DEVICES)[pages.device[v]],
        "country": np.asarray(pages.countries)[pages.country[v]],
        "hour": pages.hour[v], "day_of_week": pages.day_of_week[v]})


def train_page_policy(impressions: pd.DataFrame | None, outcomes: pd.DataFrame | None,
                      titles: pd.DataFrame, *, artworks: pd.DataFrame | None = None,
                      interactions: pd.DataFrame | None = None,
                      config: PagePolicyConfig | None = None, name: str = "page-policy",
                      progress: Any = None) -> PagePolicy:
    """Train a :class:`PagePolicy` from logged tables (module docstring for the protocol).

    ``impressions`` / ``outcomes`` follow :data:`reelpick.data.schema.IMPRESSIONS` /
    :data:`~reelpick.data.schema.OUTCOMES`; ``titles`` :data:`~reelpick.data.schema.TITLES`
    (``countries`` ``|``-separated licences when known); ``artworks`` has ``artwork_id``,
    ``title_id``, ``theme`` (and ``quality``, an observable image score, 0 if unknown);
    ``interactions`` all plays (page and organic; default: the page plays of the
    impressions). ``progress(step: str)`` is called before each step.

    With ``impressions=None`` (plays logged, no pages: MovieLens, a first launch) the ranker
    learns from pseudo-pages of each play and sampled titles
    (:func:`reelpick.page.implicit.implicit_impressions`); ``interactions`` is then required.
    """
    return train_page_policies(impressions, outcomes, titles,
                               {name: config or PagePolicyConfig()}, artworks=artworks,
                               interactions=interactions, progress=progress)[0]


def train_page_policies(impressions: pd.DataFrame | None, outcomes: pd.DataFrame | None,
                        titles: pd.DataFrame, configs: dict[str, PagePolicyConfig], *,
                        artworks: pd.DataFrame | None = None,
                        interactions: pd.DataFrame | None = None,
                        progress: Any = None) -> list[PagePolicy]:
    """One :class:`PagePolicy` per ``name: config`` of ``configs``, each the policy
    :func:`train_page_policy` trains with that config on these tables; the logs are read once
    and the history snapshots, fitted sources and artwork bandit are shared where the configs
    agree on them (candidates that differ in a few settings cost one training each for the
    ranker only).

    Example
    -------
    >>> from reelpick.world import PromotionPolicy, World, WorldConfig
    >>> world = World(WorldConfig.preset("small"), seed=0)
    >>> log = world.simulate(PromotionPolicy(), 1500)
    >>> base = PagePolicyConfig(n_rows=2, n_positions=5, trees=10)
    >>> a, b = train_page_policies(log.impressions(), log.outcomes(), world.titles(),
    ...     {"ranker": base, "no-context": dataclasses.replace(base, context=False)},
    ...     interactions=log.interactions())
    >>> a.name, b.name, b.config.context, a.composer.history is b.composer.history
    ('ranker', 'no-context', False, True)
    """
    if not configs:
        raise ValueError("configs: give at least one name: PagePolicyConfig")
    say = progress or (lambda step: None)
    titles = TITLES.validate(titles, source="titles").reset_index(drop=True)
    if impressions is None:  # plays only: pseudo-pages of each play and sampled titles
        if interactions is None:
            raise ValueError("impressions: none given, so interactions (the plays) are needed "
                             "to build the ranker's training pages")
        say("sampling pseudo-pages from the plays (no impressions logged)")
        # the countries the service's catalogue names (catalog.json), where titles have none
        home = catalog_countries(titles, interactions)[0]
        impressions, outcomes = implicit_impressions(
            interactions, titles, seed=next(iter(configs.values())).seed, country=home)
    artworks = _sort_artworks(artworks, titles)
    art_index, art_offset = _artwork_maps(artworks)
    say("reading the logs")
    countries = None
    if "countries" in titles:
        countries = sorted({c for cs in titles["countries"].fillna("").astype(str)
                            for c in cs.split("|") if c})
    pages = logged_pages(impressions, outcomes, title_ids=titles["title_id"].astype(str),
                         countries=countries, artwork_index=art_index,
                         artwork_offset=art_offset)
    if pages.n_pages == 0:
        raise ValueError("impressions: no logged pages to learn from")
    inter = (INTERACTIONS.validate(interactions, source="interactions")
             if interactions is not None else _plays_from_pages(pages))
    catalogue = Catalogue.from_frame(titles, countries=countries or pages.countries)
    members = Vocabulary(list(pd.unique(pd.concat([
        inter["member_id"].astype(str), pd.Series(pages.member_id, dtype=str)]))) + [COLD])
    t_lo, t_hi = int(pages.timestamp.min()), int(pages.timestamp.max()) + 1
    c2 = max(t_hi, int(inter["timestamp"].max()) + 1 if len(inter) else t_hi)
    histories: dict[int, History] = {}
    cache: dict[tuple, Any] = {}
    bandit: list[Any] = []

    def history(as_of: int) -> History:
        if as_of not in histories:
            histories[as_of] = History.build(inter, catalogue, members=members.to_list(),
                                             as_of=as_of)
        return histories[as_of]

    out = []
    for name, config in configs.items():
        c1 = int(t_hi - config.ranker_window * (t_hi - t_lo))
        say(f"{name}: fitting the sources on the history before the ranker's window")
        h1 = history(c1)
        src1 = _make_sources(config, h1, cache=cache)
        fb1 = FeatureBuilder(h1, source_names=[s.name for s in src1],
                             use_context=config.context)
        say(f"{name}: building the ranker's training rows")
        rng = np.random.default_rng([config.seed, 7])
        X, y, _ = training_set(pages, members, fb1, src1, countries=catalogue.countries,
                               start=c1, end=c2, max_rows=config.train_rows, rng=rng)
        if y.size == 0 or y.min() == y.max():
            raise ValueError(f"impressions: the ranker's window [{c1}, {c2}) has "
                             f"{int(y.size)} impressions and {int(y.sum())} plays; it needs "
                             "both plays and non-plays (log more traffic or widen "
                             "ranker_window)")
        say(f"{name}: training the LightGBM ranker")
        ranker = Ranker(n_estimators=config.trees, learning_rate=0.1, num_leaves=31,
                        min_child_samples=100, random_state=config.seed).fit(
            X, y, feature_names=fb1.names, categorical=fb1.categorical)
        say(f"{name}: refitting the sources on the whole history")
        h2 = history(c2)
        src2 = _make_sources(config, h2, cache=cache)
        if [s.name for s in src2] != [s.name for s in src1]:
            src2 = [s for s in src2 if s.name in {x.name for x in src1}]
        composer = _composer(config, h2, src2, ranker, titles)
        catalog = _decision_catalog(titles, artworks, catalogue)
        selector = None
        if config.artwork == "thompson" and artworks is not None:
            if not bandit:  # the bandit has no setting in the config: one for all
                say("fitting the artwork bandit")
                bandit.append(_fit_bandit(pages, artworks, titles, members))
            selector = bandit[0]
        info = {"impressions": int(len(pages)), "pages": int(pages.n_pages),
                "plays": int(pages.play.sum()), "ranker_rows": int(y.size),
                "ranker_plays": int(y.sum()), "c1": c1, "c2": c2,
                "trained_on_policies": sorted(set(pages.policy.tolist()))}
        out.append(PagePolicy(config=config, composer=composer, titles=titles,
                              artworks=artworks, catalog=catalog, members=members,
                              selector=selector, info=info, name=name))
    return out


# ---------------------------------------------------------------------- artwork bandit
_BANDIT_ARRAYS = ("mem_imp", "mem_play", "mem_watch", "mem_genre", "art_imp", "art_play",
                  "clu_imp", "clu_play")


def _artwork_catalog(artworks: pd.DataFrame, titles: pd.DataFrame) -> Any:
    from reelpick.artwork import ArtworkCatalog

    art = artworks if "quality" in artworks else artworks.assign(quality=0.0)
    if "theme" not in art:
        art = art.assign(theme="lead_actor")
    return ArtworkCatalog.from_tables(art, titles)


def _fit_bandit(pages: LoggedPages, artworks: pd.DataFrame, titles: pd.DataFrame,
                members: Vocabulary) -> Any:
    from reelpick.artwork import ArtworkRows, ThompsonArtwork

    cat = _artwork_catalog(artworks, titles)
    rows = ArtworkRows.from_pages(pages, cat.art_offset, members)
    bandit = ThompsonArtwork(cat, len(members), name="artwork-thompson")
    return bandit.fit(rows) if len(rows) else bandit


def _bandit_state(bandit: Any) -> dict[str, Any]:
    h = bandit.history_
    out = {f"h_{k}": getattr(h, k) for k in _BANDIT_ARRAYS}
    out.update(A=bandit.A_, b=bandit.b_, n_obs=np.array(bandit.n_obs_),
               config=np.array(json.dumps(asdict(bandit.config))))
    return out


def _load_bandit(path: Path, artworks: pd.DataFrame | None, titles: pd.DataFrame,
                 n_members: int) -> Any:
    from reelpick.artwork import ThompsonArtwork

    if artworks is None:
        raise ValueError(f"{path}: an artwork bandit without artworks.parquet")
    with np.load(path, allow_pickle=False) as z:
        cfg = json.loads(str(z["config"]))
        bandit = ThompsonArtwork(_artwork_catalog(artworks, titles), n_members,
                                 name="artwork-thompson", **{k: cfg[k] for k in (
                                     "l2", "noise", "n_folds")})
        for k in _BANDIT_ARRAYS:
            arr = z[f"h_{k}"]
            if arr.shape != getattr(bandit.history_, k).shape:
                raise ValueError(f"{path}: {k} has shape {arr.shape}, expected "
                                 f"{getattr(bandit.history_, k).shape}")
            setattr(bandit.history_, k, arr.copy())
        bandit.history_._tables = None
        bandit.A_, bandit.b_, bandit.n_obs_ = z["A"].copy(), z["b"].copy(), int(z["n_obs"])
    bandit._solve()
    return bandit
