"""``POST /v1/admin/reload``: swap in the model directory's current version (API key)."""

from __future__ import annotations

from fastapi import APIRouter

from reelpick.serve.deps import AdminKeyDep, StateDep
from reelpick.serve.errors import ApiError
from reelpick.serve.schemas import ErrorOut, ReloadOut

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/reload", response_model=ReloadOut,
             responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut},
                        409: {"model": ErrorOut}})
async def reload(state: StateDep, _: AdminKeyDep) -> ReloadOut:
    """Load the model directory's current version in the background and swap it in atomically;
    requests in flight finish on the old model, none is dropped. On failure the old model stays
    (409)."""
    try:
        old, new, seconds = await state.reload()
    except (OSError, ValueError, KeyError) as exc:
        raise ApiError(409, ["model_dir"], f"reload failed, old model kept: {exc}",
                       "reload_failed") from None
    return ReloadOut(model_version=new.version, previous_version=old.version,
                     seconds=round(seconds, 4))
