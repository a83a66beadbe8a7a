"""The service's catalogue as JSON, built from the titles, members and artworks tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from reelpick.data.schema import DEVICES

__all__ = ["DEFAULT_COUNTRY", "catalog_countries", "catalog_json"]

#: The one country of a catalogue whose tables name none.
DEFAULT_COUNTRY = "ZZ"


def catalog_countries(titles: pd.DataFrame, inter: pd.DataFrame | None) -> list[str]:
    """The catalogue's countries: the titles' licences (``countries``, ``|``-separated), else
    the countries the plays were made in, else ``[DEFAULT_COUNTRY]``."""
    if "countries" in titles.columns:
        lic = titles["countries"].fillna("").astype(str).str.split("|")
        countries = sorted({c for cs in lic for c in cs if c})
    else:
        countries = sorted(set(inter["country"].dropna().astype(str))) if (
            inter is not None and "country" in inter.columns) else []
    return countries or [DEFAULT_COUNTRY]


def catalog_json(titles: pd.DataFrame, members: pd.DataFrame, artworks: pd.DataFrame | None,
                  inter: pd.DataFrame) -> dict[str, Any]:
    """The catalogue the service shows, as JSON: countries, devices, genres, titles (with
    licences, release time and artworks) and the known members with their country.

    >>> import pandas as pd
    >>> cj = catalog_json(pd.DataFrame({"title_id": ["t0"]}), pd.DataFrame({"member_id": ["m"]}),
    ...                   None, pd.DataFrame({"member_id": ["m"], "title_id": ["t0"]}))
    >>> cj["titles"][0]["artworks"], cj["countries"]
    ([{'artwork_id': 't0-a0', 'theme': ''}], ['ZZ'])
    """
    lic = (titles["countries"].fillna("").astype(str).str.split("|")
           if "countries" in titles.columns else None)
    countries = catalog_countries(titles, inter)
    genres = titles["genres"].fillna("").astype(str).str.split("|") if (
        "genres" in titles.columns) else pd.Series([[]] * len(titles))
    rel = titles["release_ts"] if "release_ts" in titles.columns else pd.Series([0] * len(titles))
    arts: dict[str, list[dict[str, str]]] = {}
    if artworks is not None and len(artworks):
        for a in artworks.itertuples(index=False):
            arts.setdefault(str(a.title_id), []).append(
                {"artwork_id": str(a.artwork_id), "theme": str(getattr(a, "theme", "") or "")})

    def opt(col: str, i: int) -> Any:
        if col not in titles.columns:
            return None
        v = titles[col].iloc[i]
        return None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)

    rows = []
    for i, tid in enumerate(titles["title_id"]):
        rows.append({
            "title_id": tid, "name": opt("name", i) or tid,
            "genres": [g for g in genres.iloc[i] if g], "kind": opt("kind", i),
            "year": opt("year", i), "duration_seconds": opt("duration_seconds", i),
            "release_ts": int(rel.iloc[i]),
            "countries": ([c for c in lic.iloc[i] if c] if lic is not None else countries),
            "artworks": arts.get(tid) or [{"artwork_id": f"{tid}-a0", "theme": ""}],
        })
    mcountry = members["country"].astype(str).tolist() if "country" in members.columns else (
        [countries[0]] * len(members))
    return {
        "countries": countries, "devices": list(DEVICES),
        "genres": sorted({g for gs in genres for g in gs if g}),
        "titles": rows,
        "members": [{"member_id": m, "country": c}
                    for m, c in zip(members["member_id"].tolist(), mcountry)],
    }
