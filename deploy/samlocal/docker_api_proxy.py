"""A Docker Engine API proxy that gives `sam local`'s function containers what SAM CLI cannot:
a host directory mounted at the same path, and the host's network.

`sam local` mounts no host directory into Image-function containers and leaves them on the
default bridge, where 127.0.0.1 is the container itself. Point `DOCKER_HOST` for `sam local` at
this proxy: it rewrites each container-create call (bind mount, host networking, and distinct
ports for the runtime interface emulator, which would otherwise all take 8080 and 9001 on the
shared network) and forwards every byte of everything else to the real engine's socket.

    python3 docker_api_proxy.py --listen /tmp/x/docker.sock --mount /srv/audit
    DOCKER_HOST=unix:///tmp/x/docker.sock sam local start-api ...

Only for local testing of this project; it trusts its callers as the Docker socket does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENGINE_SOCKET = "/var/run/docker.sock"
CREATE = re.compile(r"^(/v[0-9.]+)?/containers/create(\?|$)")
RIE_PORT = "8080/tcp"


def rewrite_create(
    body: dict[str, Any], mounts: list[str], port: Callable[[], int] | None = None
) -> dict[str, Any]:
    """The container-create body, with `mounts` bound at the same paths and host networking;
    `port()` gives a free port for the runtime API of a Lambda emulator (default: ask the OS)."""
    host_config = body.setdefault("HostConfig", {})
    binds = host_config.get("Binds") or []
    host_config["Binds"] = binds + [f"{path}:{path}" for path in mounts]
    bindings = host_config.pop("PortBindings", None) or {}
    body.pop("ExposedPorts", None)
    host_config["NetworkMode"] = "host"
    entrypoint = body.get("Entrypoint") or []
    if entrypoint and entrypoint[0].endswith("aws-lambda-rie"):
        # SAM talks to the emulator at the host port it mapped to 8080: with host networking the
        # emulator listens there itself. Its runtime API needs a port of its own as well.
        host_port = (bindings.get(RIE_PORT) or [{}])[0].get("HostPort")
        if host_port:
            body["Entrypoint"] = [
                entrypoint[0],
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{host_port}",
                "--runtime-api-address",
                f"127.0.0.1:{(port or free_port)()}",
                *entrypoint[1:],
            ]
    return body


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Proxy:
    def __init__(self, mounts: list[str], engine_socket: str = ENGINE_SOCKET) -> None:
        self.mounts = mounts
        self.engine_socket = engine_socket

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            head = await client_r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            client_w.close()
            return
        request_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = [line.split(":", 1) for line in header_lines if ":" in line]
        names = {name.strip().lower(): value.strip() for name, value in headers}
        body = b""
        if method == "POST" and CREATE.match(target) and "content-length" in names:
            raw = await client_r.readexactly(int(names["content-length"]))
            body = json.dumps(rewrite_create(json.loads(raw or b"{}"), self.mounts)).encode()
            headers = [h for h in headers if h[0].strip().lower() != "content-length"]
            headers.append(["Content-Length", f" {len(body)}"])
        upgrade = "upgrade" in names.get("connection", "").lower()
        if not upgrade:
            # One request per connection: after it, the bytes that follow are not ours to parse.
            headers = _closing(headers)
        upstream_r, upstream_w = await asyncio.open_unix_connection(self.engine_socket)
        lines = [f"{method} {target} {version}"] + [f"{name}:{value}" for name, value in headers]
        upstream_w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await upstream_w.drain()
        to_engine = asyncio.create_task(_pump(client_r, upstream_w))
        if not upgrade:
            # Tell the client too, or it may reuse the connection this proxy is about to close.
            with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                status_line, *response_lines = (
                    (await upstream_r.readuntil(b"\r\n\r\n"))
                    .decode("latin-1")
                    .rstrip("\r\n")
                    .split("\r\n")
                )
                response_headers = _closing([line.split(":", 1) for line in response_lines])
                lines = [status_line] + [f"{name}:{value}" for name, value in response_headers]
                client_w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await _pump(upstream_r, client_w)
        to_engine.cancel()
        for writer in (client_w, upstream_w):
            with contextlib.suppress(OSError):
                writer.close()


def _closing(headers: list[list[str]]) -> list[list[str]]:
    """`headers` with `Connection: close` in place of any Connection header."""
    return [h for h in headers if h[0].strip().lower() != "connection"] + [["Connection", " close"]]


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def serve(listen: Path, mounts: list[str], engine_socket: str = ENGINE_SOCKET) -> None:
    proxy = Proxy(mounts, engine_socket)
    listen.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(proxy.handle, path=str(listen), limit=1 << 20)
    print(f"docker API proxy on unix://{listen}, mounting {', '.join(mounts)}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=Path, required=True, help="unix socket path to serve")
    parser.add_argument("--mount", action="append", default=[], help="host dir, same path inside")
    parser.add_argument("--engine", default=ENGINE_SOCKET, help="the real engine's unix socket")
    args = parser.parse_args()
    mounts = [str(Path(path).resolve()) for path in args.mount]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.listen, mounts, args.engine))


if __name__ == "__main__":
    main()
