"""``stare-robot serve``: host one checkpoint over HTTP (``/v1/act``) + websocket (``/v1/stream``).

    stare-robot serve --ckpt runs/sft/checkpoint                       # 127.0.0.1:8000, cpu
    STARE_SERVER_AUTH_TOKEN=secret stare-robot serve --ckpt ckpt --host 0.0.0.0 --port 8000 \\
        --device cuda:0 --max-batch-size 4 --batch-wait-ms 2

Arguments are a tyro dataclass, like every other command. Each option's default can also come
from an env var ``STARE_SERVER_<NAME>`` (:class:`~stare_robot.server.settings.ServerSettings`); the
token is best given that way (a command-line token shows in ``ps``).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from stare_robot.server.settings import ServerSettings

PROG = "stare-robot serve"


@dataclass
class ServeArgs:
    """Serve one policy checkpoint: action chunks over HTTP (JSON or msgpack) and an
    openpi-compatible websocket. Defaults may come from STARE_SERVER_<NAME> env vars."""

    ckpt: Path
    """Checkpoint directory to serve (saved with save_pretrained)."""
    host: str = "127.0.0.1"
    """Address to bind; 0.0.0.0 exposes the server."""
    port: int = 8000
    """TCP port (0 = any free port)."""
    device: str = "cpu"
    """Torch device for the policy, e.g. cpu or cuda:0."""
    auth_token: str | None = None
    """If set, /v1/* requires 'Authorization: Bearer <token>'. Prefer the env var
    STARE_SERVER_AUTH_TOKEN: a command-line token is visible in ps."""
    max_body_bytes: int = 16 * 2**20
    """Largest request body / websocket frame (else 413)."""
    max_batch_size: int = 1
    """Cross-robot micro-batch size; 1 = batching off."""
    batch_wait_ms: float = 2.0
    """Longest a batch waits for more requests, only while fewer are queued than clients are
    connected."""
    client_window_s: float = 2.0
    """An HTTP client counts as connected this long after a request."""
    torch_threads: int = 1
    """Torch intra-op threads (1 keeps served and in-process actions bit-identical)."""
    warmup_steps: int = 1
    """Predict calls before /readyz passes."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"


def _defaults_from_env() -> ServeArgs:
    """ServeArgs whose defaults are the ServerSettings ones, env vars included (the token is
    left out so that --help never prints it; it is merged back in :func:`to_settings`)."""
    import tyro

    env = ServerSettings()
    values = {f.name: getattr(env, f.name) for f in dataclasses.fields(ServeArgs)}
    values["ckpt"] = env.ckpt if env.ckpt is not None else tyro.MISSING
    values["auth_token"] = None
    return ServeArgs(**values)


def to_settings(args: ServeArgs) -> ServerSettings:
    """The validated server settings (ranges checked by pydantic); the env token if none given."""
    values = dataclasses.asdict(args)
    if values["auth_token"] is None:
        values.pop("auth_token")  # ServerSettings reads STARE_SERVER_AUTH_TOKEN itself
    return ServerSettings(**values)


def parse(argv: list[str]) -> ServerSettings:
    import tyro

    return to_settings(tyro.cli(ServeArgs, args=argv, prog=PROG, default=_defaults_from_env()))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = parse(argv)
    except ValidationError as e:
        print(f"{PROG}: invalid options:\n{e}", file=sys.stderr)
        return 2
    if not settings.ckpt.is_dir():
        print(f"{PROG}: checkpoint {settings.ckpt} is not a directory (a checkpoint saved with "
              "save_pretrained)", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from stare_robot.server.app import create_app
    from stare_robot.server.runner import serve_forever

    serve_forever(create_app(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
