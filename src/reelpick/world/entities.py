"""The world's members, titles and artworks: drawn once from a config and a seed, then fixed.

Everything here is array-based (index ``m`` for members, ``t`` for titles, ``a`` for artworks in
one flat array, title ``t`` owning ``art_offset[t]:art_offset[t+1]``). The external IDs are
``m{m}``, ``t{t}`` and ``t{t}-a{k}`` (variant ``k`` of title ``t``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelpick.data.schema import THEMES
from reelpick.world.config import AGE_BANDS, KINDS, WorldConfig

_WORDS_A = ("Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Lost", "Midnight",
            "Wild", "Distant", "Electric", "Paper", "Iron", "Quiet", "Secret", "Falling")
_WORDS_B = ("River", "Kingdom", "Signal", "Harbor", "Garden", "Empire", "Summer", "Machine",
            "Circle", "Frontier", "Letters", "Shadow", "Voyage", "Orchard", "Promise", "Storm")


@dataclass(frozen=True, eq=False)
class Entities:
    """Members, titles and artworks with their latent and observable attributes.

    Members (``n_members``): ``member_country`` (index into ``config.countries``),
    ``member_age`` (index into :data:`AGE_BANDS`), ``taste_start``/``taste_end`` (genre tastes
    ``(n_members, n_genres)`` at the start and, for ``drift = 1``, at the end of the horizon),
    ``theme_taste`` ``(n_members, n_themes)``, ``device_probs`` ``(n_members, n_devices)``.

    Titles (``n_titles``): ``genre_onehot`` ``(n_titles, n_genres)`` 0/1, ``genre_mean``
    (the same divided by the title's genre count), ``is_family``, ``is_series``,
    ``duration`` (seconds), ``shortness`` (standardised ``-log duration``), ``quality`` (true
    popularity level), ``quality_observed`` (the noisy level policies see), ``release_day``
    (day index relative to ``start``; negative for back-catalogue), ``home_country``,
    ``licensed`` ``(n_countries, n_titles)`` bool.

    Artworks (``n_artworks``): ``art_offset`` ``(n_titles + 1,)``, ``art_title``,
    ``art_theme`` (index into :data:`THEMES`), ``art_quality``.
    """

    member_country: np.ndarray
    member_age: np.ndarray
    taste_start: np.ndarray
    taste_end: np.ndarray
    theme_taste: np.ndarray
    device_probs: np.ndarray
    genre_onehot: np.ndarray
    genre_mean: np.ndarray
    is_family: np.ndarray
    is_series: np.ndarray
    duration: np.ndarray
    shortness: np.ndarray
    quality: np.ndarray
    quality_observed: np.ndarray
    release_day: np.ndarray
    home_country: np.ndarray
    licensed: np.ndarray
    art_offset: np.ndarray
    art_title: np.ndarray
    art_theme: np.ndarray
    art_quality: np.ndarray
    names: tuple[str, ...]

    @property
    def n_members(self) -> int:
        return len(self.member_country)

    @property
    def n_titles(self) -> int:
        return len(self.is_series)

    @property
    def n_artworks(self) -> int:
        return len(self.art_title)

    @property
    def n_variants(self) -> np.ndarray:
        return np.diff(self.art_offset)


def draw_entities(cfg: WorldConfig, rng: np.random.Generator) -> Entities:
    """Draw members, titles and artworks for ``cfg`` from ``rng`` (the order of draws is fixed)."""
    n_m, n_t, n_g, n_c = cfg.n_members, cfg.n_titles, cfg.n_genres, len(cfg.countries)
    genres = cfg.genres
    fam = genres.index("family")

    # --- members
    member_country = rng.integers(0, n_c, n_m)
    member_age = rng.integers(0, len(AGE_BANDS), n_m)
    age_offset = rng.normal(0.0, cfg.age_band_scale, (len(AGE_BANDS), n_g))
    a = rng.normal(0.0, cfg.taste_scale, (n_m, n_g)) + age_offset[member_age]
    b = rng.normal(0.0, cfg.taste_scale, (n_m, n_g)) + age_offset[member_age]
    theme_taste = rng.normal(0.0, cfg.theme_scale, (n_m, len(THEMES)))
    device_probs = rng.dirichlet(np.full(4, 0.7), n_m)

    # --- titles
    n_gen_per = rng.choice([1, 2, 3], size=n_t, p=[0.45, 0.4, 0.15])
    keys = rng.random((n_t, n_g))
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    onehot = (ranks < n_gen_per[:, None]).astype(np.float64)
    genre_mean = onehot / onehot.sum(axis=1, keepdims=True)
    is_series = rng.random(n_t) < cfg.series_share
    log_dur = np.where(is_series, rng.normal(np.log(40 * 60), 0.3, n_t),
                       rng.normal(np.log(105 * 60), 0.2, n_t))
    duration = np.round(np.exp(log_dur))
    shortness = -(log_dur - log_dur.mean()) / max(log_dur.std(), 1e-9)
    quality = rng.normal(0.0, 1.0, n_t)
    quality_observed = quality + rng.normal(0.0, cfg.popularity_noise, n_t)
    is_new = rng.random(n_t) < cfg.new_title_share
    release_day = np.where(is_new, rng.integers(1, max(cfg.days, 2), n_t),
                           -rng.integers(30, 3650, n_t))
    home = rng.integers(0, n_c, n_t)
    licensed = rng.random((n_c, n_t)) < cfg.availability
    licensed[home, np.arange(n_t)] = True

    # --- artworks
    n_var = rng.integers(cfg.min_artworks, cfg.max_artworks + 1, n_t)
    art_offset = np.concatenate([[0], np.cumsum(n_var)]).astype(np.int64)
    art_title = np.repeat(np.arange(n_t), n_var)
    art_theme = rng.integers(0, len(THEMES), art_offset[-1])
    art_quality = rng.normal(0.0, 1.0, art_offset[-1])

    wa = rng.integers(0, len(_WORDS_A), n_t)
    wb = rng.integers(0, len(_WORDS_B), n_t)
    names = tuple(f"The {_WORDS_A[i]} {_WORDS_B[j]}" for i, j in zip(wa, wb))
    return Entities(
        member_country=member_country, member_age=member_age, taste_start=a, taste_end=b,
        theme_taste=theme_taste, device_probs=device_probs, genre_onehot=onehot,
        genre_mean=genre_mean, is_family=onehot[:, fam] > 0, is_series=is_series,
        duration=duration, shortness=shortness, quality=quality,
        quality_observed=quality_observed, release_day=release_day.astype(np.int64),
        home_country=home, licensed=licensed, art_offset=art_offset, art_title=art_title,
        art_theme=art_theme, art_quality=art_quality, names=names,
    )


KIND_NAMES = np.array(KINDS, dtype=object)
