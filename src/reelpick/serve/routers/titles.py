"""``GET /v1/titles/{title_id}`` and ``GET /v1/artwork/{artwork_id}``."""

from __future__ import annotations

import hashlib
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, Response

from reelpick.artwork.render import PALETTES, render_artwork
from reelpick.data.schema import THEMES
from reelpick.serve.deps import BundleDep, SettingsDep
from reelpick.serve.errors import ApiError
from reelpick.serve.schemas import ArtworkOut, ErrorOut, TitleOut

router = APIRouter(prefix="/v1", tags=["titles"])
IdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]
_CACHE = {"Cache-Control": "public, max-age=86400"}
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp", ".svg": "image/svg+xml"}


@router.get("/titles/{title_id}", response_model=TitleOut,
            responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}})
async def get_title(title_id: IdPath, bundle: BundleDep) -> TitleOut:
    """A title's metadata and its artwork variants."""
    t = bundle.catalog.title(title_id)
    if t is None:
        raise ApiError(404, ["path", "title_id"], f"unknown title {title_id!r}", "not_found")
    return TitleOut(
        title_id=t["title_id"], name=t["name"], genres=t["genres"], kind=t["kind"],
        year=t["year"], duration_seconds=t["duration_seconds"], countries=t["countries"],
        artworks=[ArtworkOut(artwork_id=a["artwork_id"], theme=a["theme"],
                             url=f"/v1/artwork/{a['artwork_id']}") for a in t["artworks"]])


@router.get("/artwork/{artwork_id}", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}, 404: {"model": ErrorOut},
                       422: {"model": ErrorOut}})
async def get_artwork(artwork_id: IdPath, bundle: BundleDep, settings: SettingsDep) -> Response:
    """The artwork image: a file from ``artwork_dir`` if there is one, else a drawn SVG."""
    cat = bundle.catalog
    a = cat.artwork_index.get(artwork_id)
    if a is None:
        raise ApiError(404, ["path", "artwork_id"], f"unknown artwork {artwork_id!r}",
                       "not_found")
    found = find_image(settings.artwork_dir, artwork_id)
    if found is not None:
        return FileResponse(found[0], media_type=found[1], headers=_CACHE)
    t = int(cat.art_title[a])
    theme = cat.art_theme[a]
    if theme not in PALETTES:  # a theme of the user's own: a stable palette per artwork id
        theme = THEMES[int(hashlib.sha256(artwork_id.encode()).hexdigest(), 16) % len(THEMES)]
    svg = render_artwork(str(cat.titles[t]["name"]), theme,
                         variant=int(a - cat.art_offset[t]))
    return Response(svg, media_type="image/svg+xml", headers=_CACHE)


def find_image(artwork_dir: FilePath | None, artwork_id: str
               ) -> tuple[FilePath, str] | None:
    """The image file for ``artwork_id`` in ``artwork_dir`` and its media type, if any."""
    if artwork_dir is None:
        return None
    for ext, media in MEDIA_TYPES.items():
        path = artwork_dir / f"{artwork_id}{ext}"
        if path.is_file():
            return path, media
    return None
