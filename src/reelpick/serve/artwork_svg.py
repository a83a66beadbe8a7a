"""Artwork images: files from ``artwork_dir`` when present, else a drawn SVG per variant showing
the title's name and the artwork's theme (colours by theme, so variants look different)."""

from __future__ import annotations

import hashlib
from html import escape
from pathlib import Path

THEME_COLOURS = {
    "lead_actor": ("#1d3557", "#e63946"), "action_scene": ("#370617", "#f48c06"),
    "romance": ("#590d22", "#ff8fa3"), "comedy": ("#ffb703", "#023047"),
    "dark_mystery": ("#10002b", "#9d4edd"), "family": ("#2a9d8f", "#e9c46a"),
}
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp", ".svg": "image/svg+xml"}


def find_image(artwork_dir: Path | None, artwork_id: str) -> tuple[Path, str] | None:
    """The image file for ``artwork_id`` in ``artwork_dir`` and its media type, if any."""
    if artwork_dir is None:
        return None
    for ext, media in MEDIA_TYPES.items():
        path = artwork_dir / f"{artwork_id}{ext}"
        if path.is_file():
            return path, media
    return None


def _wrap(text: str, width: int = 16, lines: int = 3) -> list[str]:
    out: list[str] = []
    for word in text.split():
        if out and len(out[-1]) + 1 + len(word) <= width:
            out[-1] += " " + word
        else:
            out.append(word[: width + 4])
    return out[:lines]


def render_svg(artwork_id: str, name: str, theme: str) -> str:
    """A 200x300 poster: background and accent by theme, the name, the theme and the id."""
    if theme in THEME_COLOURS:
        bg, fg = THEME_COLOURS[theme]
    else:
        h = hashlib.sha256(artwork_id.encode()).hexdigest()
        bg, fg = f"#{h[:6]}", "#ffffff"
    angle = int(hashlib.sha256(artwork_id.encode()).hexdigest()[:2], 16) % 90
    texts = "".join(
        f'<text x="100" y="{130 + 26 * i}" font-size="20" font-weight="bold" fill="#fff" '
        f'text-anchor="middle" font-family="sans-serif">{escape(line)}</text>'
        for i, line in enumerate(_wrap(name)))
    label = escape(theme.replace("_", " ") or "artwork")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="300" viewBox="0 0 200 300">'
        f'<rect width="200" height="300" fill="{bg}"/>'
        f'<rect x="-60" y="40" width="320" height="60" fill="{fg}" opacity="0.55" '
        f'transform="rotate({angle} 100 70)"/>'
        f'<rect x="0" y="100" width="200" height="100" fill="#000" opacity="0.35"/>{texts}'
        f'<text x="100" y="262" font-size="14" fill="{fg}" text-anchor="middle" '
        f'font-family="sans-serif">{label}</text>'
        f'<text x="100" y="284" font-size="10" fill="#ddd" text-anchor="middle" '
        f'font-family="monospace">{escape(artwork_id)}</text></svg>')
