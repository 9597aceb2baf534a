"""Request/response models: they document the API (OpenAPI) and shape the JSON answers.

``POST /v1/act`` decodes its body itself (JSON or msgpack, see :mod:`stare_robot.server.codec`),
so :class:`ActRequest` is the documented JSON form, not a parser.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ActRequest(BaseModel):
    observation: dict[str, Any] = Field(
        description="one step, keyed by the names in GET /v1/metadata 'inputs' plus "
        "'instruction'. Images: base64 PNG/JPEG string, nested lists, or json-numpy "
        "{'__numpy__': base64, 'dtype', 'shape'}; other arrays: nested lists or json-numpy."
    )
    request_id: str | None = Field(None, description="echoed back; 1-64 of [A-Za-z0-9._:-]")


class Timing(BaseModel):
    queue_ms: float = Field(description="waited for the inference worker (incl. batching)")
    inference_ms: float = Field(description="the policy call (whole batch)")
    total_ms: float = Field(description="request received -> answer ready, inside the server")
    batch_size: int


class ActResponse(BaseModel):
    request_id: str
    actions: list[list[float]] = Field(description="(chunk_size, action_dim) action chunk")
    server_timing: Timing


class ErrorBody(BaseModel):
    status: int
    detail: str = Field(description="what was wrong and what is valid")
    request_id: str


class Health(BaseModel):
    status: str
    detail: str | None = None


class ArraySpecModel(BaseModel):
    shape: list[int]
    dtype: str


class MetadataResponse(BaseModel):
    name: str
    version: str
    action_space: str
    action_dim: int
    chunk_size: int
    control_rate_hz: float
    inputs: dict[str, ArraySpecModel]
    instruction_required: bool
    extra: dict[str, Any] = Field(description="e.g. the normalisation summary")
    cameras: dict[str, ArraySpecModel]
    state_dim: int | None
    server: dict[str, Any]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entry documenting our error body for each status code."""
    return {code: {"model": ErrorBody} for code in codes}
