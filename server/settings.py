"""Server configuration: pydantic-settings, from arguments, ``STARE_SERVER_*`` env vars or code.

The auth token is best given as the env var ``STARE_SERVER_AUTH_TOKEN`` (a command-line token is
visible to every user in ``ps``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """Everything the inference server needs; defaults suit one robot on the same machine."""

    model_config = SettingsConfigDict(env_prefix="STARE_SERVER_", extra="forbid")

    ckpt: Path | None = Field(None, description="checkpoint directory to serve")
    device: str = Field("cpu", description="torch device for the policy, e.g. cpu or cuda:0")
    host: str = Field("127.0.0.1", description="address to bind; 0.0.0.0 exposes the server")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 = any free port)")
    auth_token: SecretStr | None = Field(
        None, description="if set, /v1/* requires 'Authorization: Bearer <token>' (or Api-Key)"
    )
    max_body_bytes: int = Field(
        16 * 2**20, ge=1024, description="largest request body / websocket frame (else 413)"
    )
    max_batch_size: int = Field(
        1, ge=1, le=256, description="cross-robot micro-batch size; 1 = batching off"
    )
    batch_wait_ms: float = Field(
        2.0, ge=0.0, le=1000.0,
        description="longest a batch waits for more requests, only while fewer are queued than "
        "clients are connected",
    )
    client_window_s: float = Field(
        2.0, gt=0.0, description="an HTTP client counts as connected this long after a request"
    )
    torch_threads: int = Field(
        1, ge=1, le=256,
        description="torch intra-op threads for a served checkpoint; 1 (the default of "
        "`stare-robot eval` too) keeps served and in-process actions bit-identical and is the "
        "fastest for the tiny default model on a few cores",
    )
    warmup_steps: int = Field(1, ge=0, le=100, description="predict calls before /readyz passes")
    log_level: str = Field("info", pattern="^(critical|error|warning|info|debug)$")
