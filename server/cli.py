"""``stare-robot serve``: host one checkpoint over HTTP + websocket.

    stare-robot serve --ckpt runs/sft/checkpoint                       # 127.0.0.1:8000
    STARE_SERVER_AUTH_TOKEN=secret stare-robot serve --ckpt ckpt --host 0.0.0.0 --port 8000 \\
        --max-batch-size 4 --batch-wait-ms 2

Every option is also an env var ``STARE_SERVER_<NAME>`` (see ``--help``).
"""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError
from pydantic_settings import CliApp, SettingsConfigDict
from stare_robot.server.settings import ServerSettings


class ServeArgs(ServerSettings):
    model_config = SettingsConfigDict(cli_prog_name="stare-robot serve", cli_kebab_case=True,
                                      cli_implicit_flags=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = CliApp.run(ServeArgs, cli_args=argv)
    except ValidationError as e:
        print(f"stare-robot serve: invalid options:\n{e}", file=sys.stderr)
        return 2
    if args.ckpt is None:
        print("stare-robot serve: --ckpt DIR is required (a checkpoint saved with "
              "save_pretrained)", file=sys.stderr)
        return 2
    if not args.ckpt.is_dir():
        print(f"stare-robot serve: checkpoint {args.ckpt} is not a directory", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from stare_robot.server.app import create_app
    from stare_robot.server.runner import serve_forever

    settings = ServerSettings(**args.model_dump())
    serve_forever(create_app(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
