"""Liveness and readiness probes (no token needed: orchestrators poll them)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from stare_robot.server.deps import StateDep
from stare_robot.server.models import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and answering."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(state: StateDep) -> Health | JSONResponse:
    """200 only once the checkpoint is loaded and warmed up; 503 while loading or after a failure."""
    if state.ready.is_set():
        return Health(status="ready")
    status = "failed" if state.load_error else "loading"
    body = Health(status=status, detail=state.load_error)
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "1"})
