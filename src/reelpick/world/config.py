"""The simulated world's configuration: one frozen, validated value plus named presets.

Every number the world uses is a field here; :class:`WorldConfig` checks them all once, at
construction, and raises :class:`ValueError` naming the field. A config can come from a preset
(:meth:`WorldConfig.preset`), from a JSON or TOML file (:meth:`WorldConfig.from_file`, unknown keys
rejected) or from keyword arguments.

Example
-------
>>> cfg = WorldConfig.preset("small")
>>> cfg.n_members, cfg.page_rows * cfg.page_positions
(400, 18)
>>> WorldConfig.preset("small", n_members=50).n_members
50
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelpick.data.schema import DEVICES

#: Genres the world knows, in a fixed order (``n_genres`` takes the first ones; ``family`` is
#: always included because context effects refer to it).
GENRES: tuple[str, ...] = (
    "drama", "comedy", "action", "family", "thriller", "romance", "documentary", "horror",
    "scifi", "crime", "animation", "fantasy",
)
AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-49", "50+")
KINDS: tuple[str, ...] = ("film", "series")
_COUNTRIES = ("US", "GB", "DE", "FR", "BR", "JP", "IN", "ES")
_OFFSETS = (-5, 0, 1, 1, -3, 9, 5, 1)
#: Default relative visit rate by local hour 0..23 (evening peak).
DIURNAL: tuple[float, ...] = (
    0.5, 0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.5, 0.5, 0.6, 0.7,
    0.8, 0.8, 0.8, 0.9, 1.0, 1.2, 1.6, 2.0, 2.2, 2.0, 1.5, 0.9,
)


@dataclass(frozen=True)
class WorldConfig:
    """All parameters of the simulated streaming world (see ``docs/world.md`` for the equations).

    Sizes and calendar
        ``n_members``, ``n_titles``, ``n_genres`` (first ``n_genres`` of :data:`GENRES`, must
        include ``family``), ``countries`` with ``utc_offsets`` (hours), ``start`` (Unix seconds,
        midnight UTC), ``days`` (horizon), ``new_title_share`` (titles released during the
        horizon), ``series_share``, ``availability`` (chance a title is licensed in a country
        other than its home country), ``min_artworks``..``max_artworks`` variants per title,
        ``page_rows`` x ``page_positions`` slots per page, ``hour_weights`` (24 visit rates).
    Tastes
        ``taste_scale`` (sd of genre tastes), ``age_band_scale`` (sd of the per-age-band genre
        offset), ``theme_scale`` (sd of artwork-theme tastes), ``drift`` (fraction of the way from
        the start taste to the end taste reached at the end of the horizon), ``recent_weight`` and
        ``recent_half_life_days`` (short-term interest from recent plays), ``seen_memory`` (recent
        plays remembered per member) and ``seen_penalty`` (uplift logit lost on a title just
        played).
    Popularity and context
        ``popularity_weight``, ``new_release_boost``, ``popularity_decay_days``,
        ``popularity_noise`` (noise of the popularity the policies observe), ``device_short``
        (per device in :data:`reelpick.data.schema.DEVICES`, logit per unit of "shortness"),
        ``family_afternoon`` (12:00-17:59 local) and ``family_weekend`` (Sat/Sun) logits for
        family titles.
    Plays
        ``search_rate`` (chance a visit ends in an organic play found without the page),
        ``uplift_bias``, ``theme_weight``, ``quality_weight``, ``row_decay``,
        ``position_decay`` (examination ``row_decay**row * position_decay**position``),
        ``watch_bias``, ``watch_affinity``, ``watch_concentration`` (Beta watch fraction).
    Organic vs uplift (both 0 = off)
        ``organic_popularity_weight`` (extra logit per unit of popularity in the organic search
        only: members find popular titles by themselves) and ``saturation`` (uplift logit lost
        per unit of popularity: the page persuades least for the titles everyone searches for).
        Together they make "high organic, low uplift" titles, where ranking by p(play | shown)
        and ranking by the causal effect of showing disagree.
    Confounding and instrument
        ``mood_rate`` (chance a visit is in hidden "binge mood"; 0 disables),
        ``mood_search_rate`` (organic play chance in that mood, instead of ``search_rate``),
        ``mood_series_logit`` (organic-search logit added to series titles in that mood),
        ``cell_share`` (share of visits in the
        randomised promotion cell, the instrument).
    Engine
        ``batch_size`` (visits per batch; member state is updated between batches).
    """

    n_members: int = 20_000
    n_titles: int = 2_000
    n_genres: int = 12
    countries: tuple[str, ...] = _COUNTRIES[:6]
    utc_offsets: tuple[int, ...] = _OFFSETS[:6]
    start: int = 1_704_067_200  # 2024-01-01T00:00:00Z, a Monday
    days: int = 60
    new_title_share: float = 0.15
    series_share: float = 0.35
    availability: float = 0.6
    min_artworks: int = 3
    max_artworks: int = 8
    page_rows: int = 5
    page_positions: int = 10
    hour_weights: tuple[float, ...] = DIURNAL
    taste_scale: float = 1.0
    age_band_scale: float = 0.5
    theme_scale: float = 0.7
    drift: float = 0.5
    recent_weight: float = 2.0
    recent_half_life_days: float = 3.0
    seen_memory: int = 8
    seen_penalty: float = 2.0
    popularity_weight: float = 0.5
    new_release_boost: float = 1.5
    popularity_decay_days: float = 14.0
    popularity_noise: float = 0.3
    device_short: tuple[float, ...] = (-0.3, 0.9, 0.3, 0.0)
    family_afternoon: float = 0.6
    family_weekend: float = 0.6
    search_rate: float = 0.3
    uplift_bias: float = -3.5
    theme_weight: float = 0.5
    quality_weight: float = 0.3
    row_decay: float = 0.85
    position_decay: float = 0.85
    watch_bias: float = 0.0
    watch_affinity: float = 0.8
    watch_concentration: float = 4.0
    organic_popularity_weight: float = 0.0
    saturation: float = 0.0
    mood_rate: float = 0.2
    mood_search_rate: float = 0.8
    mood_series_logit: float = 1.5
    cell_share: float = 0.5
    batch_size: int = 4096
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                object.__setattr__(self, f.name, tuple(v))
        _positive_int(self, "n_members", "n_titles", "n_genres", "days", "min_artworks",
                      "max_artworks", "page_rows", "page_positions", "seen_memory", "batch_size")
        _finite(self, *[f.name for f in dataclasses.fields(self)
                        if f.type in ("float", float)])
        if self.n_genres > len(GENRES):
            raise ValueError(f"n_genres: at most {len(GENRES)} genres are known, got "
                             f"{self.n_genres}")
        if self.n_genres < 4:
            raise ValueError(f"n_genres: must be >= 4 so that 'family' is included, got "
                             f"{self.n_genres}")
        if not self.countries or len(set(self.countries)) != len(self.countries):
            raise ValueError(f"countries: need a non-empty list of distinct codes, got "
                             f"{self.countries!r}")
        if any(not isinstance(c, str) or not c for c in self.countries):
            raise ValueError(f"countries: codes must be non-empty strings, got {self.countries!r}")
        if len(self.utc_offsets) != len(self.countries):
            raise ValueError(f"utc_offsets: need one offset per country ({len(self.countries)}), "
                             f"got {len(self.utc_offsets)}")
        if any(not isinstance(o, int) or not -12 <= o <= 14 for o in self.utc_offsets):
            raise ValueError(f"utc_offsets: whole hours in -12..14, got {self.utc_offsets!r}")
        if not isinstance(self.start, int) or self.start < 0 or self.start % 86_400:
            raise ValueError(f"start: must be a Unix time at midnight UTC (a multiple of 86400), "
                             f"got {self.start!r}")
        if self.max_artworks < self.min_artworks:
            raise ValueError(f"max_artworks: must be >= min_artworks ({self.min_artworks}), got "
                             f"{self.max_artworks}")
        if len(self.hour_weights) != 24 or any(w < 0 for w in self.hour_weights) \
                or sum(self.hour_weights) <= 0:
            raise ValueError("hour_weights: need 24 non-negative rates with a positive sum")
        for name in ("hour_weights", "device_short"):
            if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)
                   for x in getattr(self, name)):
                raise ValueError(f"{name}: values must be finite numbers")
        if len(self.device_short) != len(DEVICES):
            raise ValueError(f"device_short: need one value per device {DEVICES}, got "
                             f"{len(self.device_short)}")
        for name in ("new_title_share", "series_share", "mood_rate"):
            _interval(self, name, 0.0, 1.0, hi_open=True)
        for name in ("availability", "drift", "search_rate", "mood_search_rate", "cell_share"):
            _interval(self, name, 0.0, 1.0)
        for name in ("row_decay", "position_decay"):
            _interval(self, name, 0.0, 1.0, lo_open=True)
        for name in ("taste_scale", "age_band_scale", "theme_scale", "popularity_noise"):
            _interval(self, name, 0.0, math.inf)
        for name in ("recent_half_life_days", "popularity_decay_days", "watch_concentration"):
            _interval(self, name, 0.0, math.inf, lo_open=True)
        for name in ("organic_popularity_weight", "saturation"):
            _interval(self, name, 0.0, 5.0)
        if self.seen_penalty < 0:
            raise ValueError(f"seen_penalty: must be >= 0, got {self.seen_penalty}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> WorldConfig:
        """A named preset: ``small`` (tests, seconds), ``default`` (the demo), ``large``
        (benchmarks: 100k members, 10k titles); ``overrides`` replace fields."""
        if name not in PRESETS:
            raise ValueError(f"preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides, "name": overrides.get("name", name)})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WorldConfig:
        """Build from a mapping; a ``preset`` key starts from that preset. Unknown keys raise."""
        values = dict(values)
        base: dict[str, Any] = {}
        if "preset" in values:
            preset = values.pop("preset")
            if preset not in PRESETS:
                raise ValueError(f"preset: unknown preset {preset!r}; choose one of "
                                 f"{sorted(PRESETS)}")
            base = {**PRESETS[preset], "name": preset}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**{**base, **values})

    @classmethod
    def from_file(cls, path: str | Path) -> WorldConfig:
        """Read a ``.json`` or ``.toml`` file (top-level keys = fields, optional ``preset``)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such config file")
        suffix = path.suffix.lower()
        try:
            if suffix == ".json":
                values = json.loads(path.read_text())
            elif suffix == ".toml":
                values = tomllib.loads(path.read_text())
            else:
                raise ValueError(f"{path}: unsupported config type {suffix!r}; use .json or .toml")
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: cannot parse config: {exc}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: the config must be a table/object of fields")
        try:
            return cls.from_dict(values)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from None

    def replace(self, **changes: Any) -> WorldConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}

    @property
    def n_slots(self) -> int:
        return self.page_rows * self.page_positions

    @property
    def genres(self) -> tuple[str, ...]:
        return GENRES[: self.n_genres]


def _positive_int(cfg: WorldConfig, *names: str) -> None:
    for name in names:
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: must be a positive integer, got {v!r}")


def _finite(cfg: WorldConfig, *names: str) -> None:
    for name in names:
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name}: must be a finite number, got {v!r}")


def _interval(cfg: WorldConfig, name: str, lo: float, hi: float, *, lo_open: bool = False,
              hi_open: bool = False) -> None:
    v = getattr(cfg, name)
    ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name}: must be in {lb}{lo}, {hi}{rb}, got {v!r}")


PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(n_members=400, n_titles=150, countries=_COUNTRIES[:3],
                  utc_offsets=_OFFSETS[:3], days=14, page_rows=3, page_positions=6,
                  batch_size=1024, popularity_decay_days=5.0),
    "default": {},
    "large": dict(n_members=100_000, n_titles=10_000, countries=_COUNTRIES,
                  utc_offsets=_OFFSETS, days=90, page_rows=6, page_positions=10),
}
