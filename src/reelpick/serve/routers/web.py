"""The web page at ``/`` (plain HTML/JS under ``static/``) and ``GET /v1/options`` for its
pickers."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from reelpick.serve.deps import BundleDep
from reelpick.serve.schemas import OptionsOut

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["web"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/v1/options", response_model=OptionsOut)
async def options(bundle: BundleDep) -> OptionsOut:
    """Devices, countries and some known members (for the web page's pickers)."""
    cat = bundle.catalog
    return OptionsOut(devices=list(cat.devices), countries=list(cat.countries),
                      members=cat.sample_members(50), model_version=bundle.version,
                      policy=bundle.provider.name)
