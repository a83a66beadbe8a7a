"""The catalogue the service shows: titles, artworks, licences and the known members.

Loaded from ``catalog.json`` of a model version (:mod:`reelpick.serve.model_dir`). Titles and
artworks keep their external IDs at the API edge and dense indices inside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Catalog:
    """Titles (``T``), artworks (``A``, grouped by title), countries (``K``), genres (``G``).

    Arrays: ``licensed (K, T)`` bool, ``release_ts (T,)``, ``genre_mask (G, T)`` bool,
    ``art_offset (T + 1,)`` (title ``t`` owns artworks ``art_offset[t]:art_offset[t+1]``),
    ``artwork_ids (A,)``, ``art_title (A,)``.
    """

    title_ids: np.ndarray
    titles: list[dict[str, Any]]
    title_index: dict[str, int]
    countries: tuple[str, ...]
    devices: tuple[str, ...]
    genres: tuple[str, ...]
    licensed: np.ndarray
    release_ts: np.ndarray
    genre_mask: np.ndarray
    art_offset: np.ndarray
    artwork_ids: np.ndarray
    art_title: np.ndarray
    art_theme: tuple[str, ...]
    artwork_index: dict[str, int]
    member_country: dict[str, str]

    @property
    def n_titles(self) -> int:
        return len(self.title_ids)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Catalog:
        titles = data["titles"]
        countries = tuple(data["countries"])
        genres = tuple(data["genres"])
        kidx = {c: i for i, c in enumerate(countries)}
        gidx = {g: i for i, g in enumerate(genres)}
        T = len(titles)
        licensed = np.zeros((len(countries), T), dtype=bool)
        genre_mask = np.zeros((len(genres), T), dtype=bool)
        art_ids: list[str] = []
        art_title: list[int] = []
        art_theme: list[str] = []
        offset = np.zeros(T + 1, dtype=np.int64)
        for t, row in enumerate(titles):
            for c in row["countries"]:
                if c in kidx:
                    licensed[kidx[c], t] = True
            for g in row["genres"]:
                genre_mask[gidx[g], t] = True
            for a in row["artworks"]:
                art_ids.append(a["artwork_id"])
                art_title.append(t)
                art_theme.append(a.get("theme", ""))
            offset[t + 1] = len(art_ids)
        ids = np.array([r["title_id"] for r in titles], dtype=object)
        return cls(
            title_ids=ids, titles=titles, title_index={str(t): i for i, t in enumerate(ids)},
            countries=countries, devices=tuple(data["devices"]), genres=genres,
            licensed=licensed,
            release_ts=np.array([r["release_ts"] for r in titles], dtype=np.int64),
            genre_mask=genre_mask, art_offset=offset,
            artwork_ids=np.array(art_ids, dtype=object),
            art_title=np.array(art_title, dtype=np.int64), art_theme=tuple(art_theme),
            artwork_index={a: i for i, a in enumerate(art_ids)},
            member_country={m["member_id"]: m["country"] for m in data["members"]},
        )

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        return cls.from_json(json.loads(Path(path).read_text()))

    def title(self, title_id: str) -> dict[str, Any] | None:
        i = self.title_index.get(title_id)
        return None if i is None else self.titles[i]

    def sample_members(self, n: int = 50) -> list[str]:
        """The first ``n`` known members (for the web page's picker)."""
        out = []
        for m in self.member_country:
            out.append(m)
            if len(out) >= n:
                break
        return out
