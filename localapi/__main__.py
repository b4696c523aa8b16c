"""`python -m localapi`: serve template.yaml's HTTP API on HOST:PORT, like `sam local start-api`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from localapi.server import LocalApi, Server
from localapi.template import read_application


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localapi", description=__doc__)
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--host", help="default: HOST, else 127.0.0.1")
    parser.add_argument("--port", type=int, help="default: PORT, else 3000")
    parser.add_argument(
        "--workers",
        type=int,
        default=8,
        help="concurrent invocations, like warm containers (default 8)",
    )
    parser.add_argument(
        "--threads",
        action="store_true",
        help="run the workers as threads of this process instead of processes of their own",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s localapi %(message)s", stream=sys.stderr
    )
    for noisy in ("httpx", "mangum"):  # one line per request is ours to write
        logging.getLogger(noisy).setLevel(logging.WARNING)

    # Validate settings before serving: a bad environment stops here, naming the variable.
    from simpleai import runtime
    from simpleai.settings import SettingsError

    try:
        settings = runtime.settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    api = LocalApi(
        read_application(args.template), workers=args.workers, processes=not args.threads
    )
    api.load_handlers()
    port = args.port if args.port is not None else settings.port
    server = Server(api, args.host or settings.host, port)
    routes = ", ".join(route.route_key for route in api.application.routes)
    logging.getLogger("localapi").info("serving %s on %s (%s)", args.template, server.url, routes)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
