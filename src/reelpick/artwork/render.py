"""Rendered artwork: each variant drawn as an SVG poster showing its title name and theme.

Every theme has a palette and a motif (a silhouette for *lead actor*, a burst for *action
scene*, a heart for *romance*, a grin for *comedy*, a moon and an eye for *dark/mystery*, a
house with three figures for *family*). The variant number moves and turns the motif and the
gradient, so the variants of one title differ; the image quality sets how crisp it looks
(contrast of the motif, film grain below average quality). Output is deterministic, valid XML
(text escaped), 200 x 300, no external resources.

``write_artwork_images(world.artworks(), world.titles(), out_dir)`` writes ``{artwork_id}.svg``
files: the service shows them when its ``artwork_dir`` setting points to ``out_dir``
(``reelpick.serve.routers.titles.find_image`` looks up ``{artwork_id}.svg`` there; without a
file the service draws the same poster with :func:`render_artwork`).

Example
-------
>>> svg = render_artwork("The Quiet Harbor", "romance", quality=0.8, variant=1)
>>> import xml.etree.ElementTree as ET
>>> root = ET.fromstring(svg)
>>> root.tag.endswith("svg"), "The Quiet Harbor" in svg, "romance" in svg
(True, True, True)
"""

from __future__ import annotations

import math
import re
from html import escape
from pathlib import Path

import pandas as pd

from reelpick.data.schema import THEMES

#: Background (top, bottom) and accent colours per theme.
PALETTES: dict[str, tuple[str, str, str]] = {
    "lead_actor": ("#1d3557", "#457b9d", "#f1faee"),
    "action_scene": ("#370617", "#d00000", "#ffba08"),
    "romance": ("#590d22", "#c9184a", "#ffccd5"),
    "comedy": ("#ff9f1c", "#ffbf69", "#2b2d42"),
    "dark_mystery": ("#10002b", "#3c096c", "#c77dff"),
    "family": ("#2a9d8f", "#8ab17d", "#fefae0"),
}


def _motif(theme: str, accent: str, opacity: float) -> str:
    a, o = accent, f'{opacity:.2f}'
    if theme == "lead_actor":
        return (f'<circle cx="0" cy="-38" r="26" fill="{a}" opacity="{o}"/>'
                f'<path d="M-55 40 Q-50 -8 0 -8 Q50 -8 55 40 Z" fill="{a}" opacity="{o}"/>')
    if theme == "action_scene":
        pts = " ".join(f"{(50 if i % 2 == 0 else 20) * math.cos(i * math.pi / 8):.1f},"
                       f"{(50 if i % 2 == 0 else 20) * math.sin(i * math.pi / 8):.1f}"
                       for i in range(16))
        return (f'<polygon points="{pts}" fill="{a}" opacity="{o}"/>'
                f'<circle r="14" fill="#ffffff" opacity="{o}"/>')
    if theme == "romance":
        return (f'<path d="M0 38 C-60 0 -40 -48 0 -20 C40 -48 60 0 0 38 Z" fill="{a}" '
                f'opacity="{o}"/>')
    if theme == "comedy":
        return (f'<circle r="46" fill="{a}" opacity="{o}"/>'
                '<circle cx="-16" cy="-12" r="6" fill="#ffbf69"/>'
                '<circle cx="16" cy="-12" r="6" fill="#ffbf69"/>'
                '<path d="M-26 10 Q0 40 26 10" stroke="#ffbf69" stroke-width="6" fill="none"/>')
    if theme == "dark_mystery":
        return (f'<path d="M10 -46 A46 46 0 1 0 10 46 A36 36 0 1 1 10 -46 Z" fill="{a}" '
                f'opacity="{o}"/>'
                f'<ellipse cx="24" cy="0" rx="18" ry="9" fill="none" stroke="{a}" '
                f'stroke-width="3" opacity="{o}"/><circle cx="24" cy="0" r="4" fill="{a}"/>')
    if theme == "family":
        return (f'<polygon points="-40,-5 0,-45 40,-5" fill="{a}" opacity="{o}"/>'
                f'<rect x="-32" y="-5" width="64" height="34" fill="{a}" opacity="{o}"/>'
                + "".join(f'<circle cx="{x}" cy="44" r="{r}" fill="{a}" opacity="{o}"/>'
                          for x, r in ((-30, 9), (0, 7), (30, 9))))
    return f'<rect x="-40" y="-40" width="80" height="80" fill="{a}" opacity="{o}"/>'


def _wrap(text: str, width: int = 16, lines: int = 3) -> list[str]:
    out: list[str] = []
    for word in text.split():
        if out and len(out[-1]) + 1 + len(word) <= width:
            out[-1] += " " + word
        else:
            out.append(word[: width + 4])
    return out[:lines] or [""]


def render_artwork(title_name: str, theme: str, quality: float = 0.0, variant: int = 0) -> str:
    """An SVG poster (string) for one artwork variant: the theme's palette and motif, the title
    name, the theme label; ``variant`` moves the motif, ``quality`` sets its crispness.

    Raises ``ValueError`` for an unknown theme, a negative variant or a non-finite quality.
    """
    if theme not in PALETTES:
        raise ValueError(f"theme: unknown theme {theme!r}; use one of {THEMES}")
    if isinstance(variant, bool) or not isinstance(variant, int) or variant < 0:
        raise ValueError(f"variant: must be a non-negative integer, got {variant!r}")
    q = float(quality)
    if not math.isfinite(q):
        raise ValueError(f"quality: must be finite, got {quality!r}")
    top, bottom, accent = PALETTES[theme]
    opacity = 0.55 + 0.4 / (1.0 + math.exp(-q))          # 0.55..0.95 with quality
    cx = 100 + (-40, 30, 0, 40, -25, 15, -10, 35)[variant % 8]
    cy = 95 + (0, 15, -10, 20, 10, -15, 25, 5)[variant % 8]
    angle = (variant * 37) % 360 if theme in ("action_scene", "comedy") else \
        (-12, 8, 0, 14, -6, 10, -14, 4)[variant % 8]
    scale = 1.0 + 0.08 * (variant % 3)
    grad = f"g{variant}"
    gx2 = 0 if variant % 2 == 0 else 1
    texts = "".join(
        f'<text x="100" y="{218 + 22 * i}" font-size="18" font-weight="bold" fill="#ffffff" '
        f'text-anchor="middle" font-family="sans-serif">{escape(line)}</text>'
        for i, line in enumerate(_wrap(title_name)))
    grain = ""
    if q < 0:
        grain = (f'<rect width="200" height="300" fill="#808080" '
                 f'opacity="{min(0.35, 0.12 * -q):.2f}"/>')
    label = escape(theme.replace("_", " "))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="300" '
        'viewBox="0 0 200 300">'
        f'<title>{escape(title_name)} ({label}, variant {variant})</title>'
        f'<defs><linearGradient id="{grad}" x1="0" y1="0" x2="{gx2}" y2="1">'
        f'<stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/>'
        '</linearGradient></defs>'
        f'<rect width="200" height="300" fill="url(#{grad})"/>'
        f'<g transform="translate({cx} {cy}) rotate({angle}) scale({scale:.2f})">'
        f'{_motif(theme, accent, opacity)}</g>{grain}'
        '<rect x="0" y="190" width="200" height="110" fill="#000000" opacity="0.45"/>'
        f'{texts}'
        f'<text x="100" y="288" font-size="12" fill="{accent}" text-anchor="middle" '
        f'font-family="sans-serif" data-theme="{escape(theme)}">{label}</text></svg>')


def write_artwork_images(artworks: pd.DataFrame, titles: pd.DataFrame,
                         out_dir: str | Path) -> dict[str, Path]:
    """Write ``{artwork_id}.svg`` for every row of ``artworks`` (``artwork_id``, ``title_id``,
    ``theme``, ``quality``; e.g. ``World.artworks()``) with the title's ``name`` from ``titles``.
    The variant is the ``-a{k}`` suffix of the id (else the rank within the title). Returns
    ``{artwork_id: path}``."""
    for col in ("artwork_id", "title_id", "theme", "quality"):
        if col not in artworks.columns:
            raise ValueError(f"artworks: missing column {col!r}")
    for col in ("title_id", "name"):
        if col not in titles.columns:
            raise ValueError(f"titles: missing column {col!r}")
    names = dict(zip(titles["title_id"], titles["name"]))
    missing = sorted(set(artworks["title_id"]) - set(names))
    if missing:
        raise ValueError(f"artworks: title_id(s) not in titles: {missing[:5]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rank = artworks.groupby("title_id", sort=False).cumcount().to_numpy()
    paths: dict[str, Path] = {}
    safe = re.compile(r"^[A-Za-z0-9._-]+$")
    for i, (aid, tid, theme, q) in enumerate(zip(artworks["artwork_id"], artworks["title_id"],
                                                 artworks["theme"], artworks["quality"])):
        aid = str(aid)
        if not safe.match(aid):
            raise ValueError(f"artwork_id: {aid!r} is not a safe file name")
        m = re.search(r"-a(\d+)$", aid)
        variant = int(m.group(1)) if m else int(rank[i])
        path = out / f"{aid}.svg"
        path.write_text(render_artwork(str(names[tid]), str(theme), float(q), variant))
        paths[aid] = path
    return paths
