"""``GET /v1/titles/{title_id}`` and ``GET /v1/artwork/{artwork_id}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, Response

from reelpick.serve.artwork_svg import find_image, render_svg
from reelpick.serve.deps import BundleDep, SettingsDep
from reelpick.serve.errors import ApiError
from reelpick.serve.schemas import ErrorOut, TitleOut

router = APIRouter(prefix="/v1", tags=["titles"])
IdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]
_CACHE = {"Cache-Control": "public, max-age=86400"}


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
        artworks=[{"artwork_id": a["artwork_id"], "theme": a["theme"],
                   "url": f"/v1/artwork/{a['artwork_id']}"} for a in t["artworks"]])


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
    name = cat.titles[int(cat.art_title[a])]["name"]
    return Response(render_svg(artwork_id, name, cat.art_theme[a]), media_type="image/svg+xml",
                    headers=_CACHE)
