"""``GET /v1/metadata``: everything a client needs to build a valid observation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from stare_robot.server.deps import AuthDep, StateDep
from stare_robot.server.models import MetadataResponse, error_responses

router = APIRouter(tags=["policy"])


@router.get("/v1/metadata", response_model=MetadataResponse,
            responses=error_responses(401, 403, 503))
async def metadata(state: StateDep, _auth: AuthDep) -> dict[str, Any]:
    """Model name/version, action space and dimension, chunk size, control rate, expected inputs
    (cameras and state with shape/dtype), whether an instruction is required, normalisation."""
    return state.metadata_dict()
