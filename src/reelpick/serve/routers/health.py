"""``GET /healthz`` and ``GET /metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from reelpick.serve.deps import StateDep
from reelpick.serve.metrics import CONTENT_TYPE_LATEST
from reelpick.serve.schemas import HealthOut, LogHealth

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def healthz(state: StateDep) -> JSONResponse:
    """``ok`` when the log writer runs and the log passed its integrity check at start-up."""
    store = state.store
    ok = store.alive and store.integrity == "ok"
    body = HealthOut(status="ok" if ok else "degraded", model_version=state.bundle.version,
                     log=LogHealth(alive=store.alive, integrity=store.integrity,
                                   queue_depth=store.queue_depth()))
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(state: StateDep) -> Response:
    """Prometheus text exposition format."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
