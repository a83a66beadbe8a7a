"""What the artwork policies know about titles and their images: one immutable value.

Artworks live in one flat array grouped by title: title ``t`` owns the global artwork indices
``art_offset[t]:art_offset[t + 1]``; the *variant* of an artwork is its rank within its title
(``0..n_variants[t] - 1``), which is what a :class:`~reelpick.world.PageBatch` stores.

Example
-------
>>> from reelpick.world import World, WorldConfig
>>> cat = ArtworkCatalog.from_world(World(WorldConfig.preset("small"), seed=0))
>>> cat.n_titles, int(cat.n_variants.min()) >= 3, cat.theme_names[0]
(150, True, 'lead_actor')
>>> glob, ok = cat.pad([[0, -1]])
>>> glob.shape == (1, 2, cat.max_variants), bool(ok[0, 1].any())
(True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reelpick.data.schema import THEMES

#: Which artwork theme a played genre speaks for (domain prior; unknown genres: none).
GENRE_THEME: dict[str, str] = {
    "drama": "lead_actor", "documentary": "lead_actor", "comedy": "comedy",
    "action": "action_scene", "scifi": "action_scene", "fantasy": "action_scene",
    "romance": "romance", "thriller": "dark_mystery", "horror": "dark_mystery",
    "crime": "dark_mystery", "family": "family", "animation": "family",
}


@dataclass(frozen=True, eq=False)
class ArtworkCatalog:
    """Titles and artworks as arrays.

    ``art_offset (T + 1,)``; per artwork ``theme (A,)`` (index into ``theme_names``) and
    ``quality (A,)`` (the observable visual-quality score); per title ``genre_onehot (T, G)``;
    ``genre_theme (G, n_themes)`` maps played genres to themes (:data:`GENRE_THEME`).
    """

    art_offset: np.ndarray
    theme: np.ndarray
    quality: np.ndarray
    genre_onehot: np.ndarray
    theme_names: tuple[str, ...] = THEMES
    genre_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        off = np.asarray(self.art_offset, dtype=np.int64)
        if off.ndim != 1 or off.size < 2 or off[0] != 0 or (np.diff(off) < 1).any():
            raise ValueError("art_offset: expected (T + 1,) increasing from 0, >= 1 variant each")
        A = int(off[-1])
        theme = np.asarray(self.theme, dtype=np.int64)
        quality = np.asarray(self.quality, dtype=np.float64)
        if theme.shape != (A,) or quality.shape != (A,):
            raise ValueError(f"theme, quality: expected shape ({A},), got {theme.shape}, "
                             f"{quality.shape}")
        if theme.size and (theme.min() < 0 or theme.max() >= len(self.theme_names)):
            raise ValueError(f"theme: indices must lie in 0..{len(self.theme_names) - 1}")
        if not np.isfinite(quality).all():
            raise ValueError("quality: must be finite")
        g = np.asarray(self.genre_onehot, dtype=np.float64)
        if g.ndim != 2 or g.shape[0] != off.size - 1:
            raise ValueError(f"genre_onehot: expected ({off.size - 1}, G), got {g.shape}")
        object.__setattr__(self, "art_offset", off)
        object.__setattr__(self, "theme", theme)
        object.__setattr__(self, "quality", quality)
        object.__setattr__(self, "genre_onehot", g)
        names = self.genre_names or tuple(f"g{i}" for i in range(g.shape[1]))
        object.__setattr__(self, "genre_names", tuple(names))
        gt = np.zeros((g.shape[1], len(self.theme_names)))
        for i, name in enumerate(names):
            th = GENRE_THEME.get(name)
            if th in self.theme_names:
                gt[i, self.theme_names.index(th)] = 1.0
        object.__setattr__(self, "genre_theme", gt)
        counts = g.sum(axis=1, keepdims=True)
        object.__setattr__(self, "genre_mean", g / np.maximum(counts, 1.0))
        nv = np.diff(off)
        object.__setattr__(self, "n_variants", nv)
        object.__setattr__(self, "art_title", np.repeat(np.arange(nv.size), nv))
        object.__setattr__(self, "max_variants", int(nv.max()))

    # derived in __post_init__
    genre_theme: np.ndarray = field(init=False, repr=False)
    genre_mean: np.ndarray = field(init=False, repr=False)
    n_variants: np.ndarray = field(init=False, repr=False)
    art_title: np.ndarray = field(init=False, repr=False)
    max_variants: int = field(init=False, repr=False)

    @property
    def n_titles(self) -> int:
        return self.art_offset.size - 1

    @property
    def n_artworks(self) -> int:
        return int(self.art_offset[-1])

    @property
    def n_themes(self) -> int:
        return len(self.theme_names)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_world(cls, world: object) -> ArtworkCatalog:
        """The catalogue of a :class:`~reelpick.world.World` (themes and the observable image
        quality of ``World.artworks()``; genres from the titles)."""
        ent = world.entities  # type: ignore[attr-defined]
        return cls(art_offset=ent.art_offset, theme=ent.art_theme, quality=ent.art_quality,
                   genre_onehot=ent.genre_onehot,
                   genre_names=tuple(world.config.genres))  # type: ignore[attr-defined]

    @classmethod
    def from_tables(cls, artworks: pd.DataFrame, titles: pd.DataFrame,
                    genres: Sequence[str] | None = None) -> ArtworkCatalog:
        """From ``World.artworks()`` (``artwork_id``, ``title_id``, ``theme``, ``quality``) and
        ``World.titles()`` (``title_id``, ``genres`` ``|``-separated). Titles keep the order of
        ``titles``; a title's variants keep their order in ``artworks``."""
        for col in ("title_id", "theme", "quality"):
            if col not in artworks.columns:
                raise ValueError(f"artworks: missing column {col!r}")
        if "title_id" not in titles.columns:
            raise ValueError("titles: missing column 'title_id'")
        index = {t: i for i, t in enumerate(titles["title_id"])}
        t_idx = artworks["title_id"].map(index)
        if t_idx.isna().any():
            raise ValueError("artworks: a title_id is not in titles")
        order = np.argsort(t_idx.to_numpy(), kind="stable")
        t_sorted = t_idx.to_numpy()[order].astype(np.int64)
        counts = np.bincount(t_sorted, minlength=len(index))
        unknown = sorted(set(artworks["theme"]) - set(THEMES))
        if unknown:
            raise ValueError(f"artworks: unknown theme(s) {unknown}; known {THEMES}")
        theme = np.array([THEMES.index(x) for x in artworks["theme"].to_numpy()[order]])
        glists = [str(g).split("|") if isinstance(g, str) and g else []
                  for g in titles.get("genres", pd.Series([""] * len(index)))]
        names = list(genres) if genres is not None else sorted({g for gl in glists for g in gl})
        onehot = np.zeros((len(index), max(len(names), 1)))
        for i, gl in enumerate(glists):
            for g in gl:
                if g in names:
                    onehot[i, names.index(g)] = 1.0
        return cls(art_offset=np.concatenate([[0], np.cumsum(counts)]), theme=theme,
                   quality=artworks["quality"].to_numpy(dtype=float)[order],
                   genre_onehot=onehot, genre_names=tuple(names) or ("none",))

    # ------------------------------------------------------------------ helpers
    def pad(self, titles: np.ndarray | Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """``(glob, valid)``, each ``(*titles.shape, max_variants)``: the global artwork index
        of every variant of every title (0 where padded) and whether that variant exists
        (``False`` everywhere for ``-1`` = empty slots)."""
        t = np.asarray(titles, dtype=np.int64)
        if t.size and t.max() >= self.n_titles:
            raise ValueError(f"titles: indices must be < {self.n_titles}")
        shown = t >= 0
        t0 = np.where(shown, t, 0)
        k = np.arange(self.max_variants)
        valid = (k < self.n_variants[t0][..., None]) & shown[..., None]
        glob = np.where(valid, self.art_offset[t0][..., None] + k, 0)
        return glob, valid
