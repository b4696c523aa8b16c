"""The local API's own HTTP server, in front of a function that echoes its event: framing,
keep-alive, refusals as API Gateway gives them, and workers as threads or as processes."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from localapi import http11
from localapi.events import HttpRequest, HttpResponse
from localapi.server import LocalApi, Server
from localapi.template import read_application

ECHO_HANDLER = """
import json, os, pathlib, threading, time

def handler(event, context):
    path = event["rawPath"]
    if path == "/crash":
        os._exit(1)
    if path == "/raise":
        raise RuntimeError("boom")
    if path == "/bad-header":
        return {"statusCode": 200, "headers": {"x-split": "a\\r\\nset-cookie: evil=1"}, "body": ""}
    if path == "/slow":
        time.sleep(0.3)  # a function that takes a while: its worker is busy meanwhile
    if path == "/hold":  # busy until the test says: ?until=<a file the test will create>
        until = pathlib.Path(event["queryStringParameters"]["until"])
        until.with_suffix(".holding").touch()
        while not until.exists():
            time.sleep(0.01)
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "content-length": "1"},
        "cookies": ["seen=1"],
        "body": json.dumps({
            "event": event,
            "pid": os.getpid(),
            "worker": f"{os.getpid()}/{threading.current_thread().name}",
        }),
    }
"""

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.handler
      Events:
        Any:
          Type: HttpApi
          Properties:
            Method: ANY
            Path: /{proxy+}
"""


@pytest.fixture
def echo_template(tmp_path: Path) -> Path:
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "app.py").write_text(ECHO_HANDLER)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    return tmp_path / "template.yaml"


@pytest.fixture
def serve(echo_template: Path) -> Iterator[Callable[..., str]]:
    """`serve(processes=..., workers=...)`: the echo function behind the local API; its URL."""
    servers: list[Server] = []

    def start(*, processes: bool, workers: int = 2) -> str:
        api = LocalApi(read_application(echo_template), workers=workers, processes=processes)
        servers.append(Server(api).start())
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(params=[False, True], ids=["threads", "processes"])
def echo_api(request: pytest.FixtureRequest, serve: Callable[..., str]) -> str:
    return serve(processes=request.param)


def echoed(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, response.text
    event: dict[str, object] = response.json()["event"]
    return event


def test_a_request_arrives_as_a_payload_2_event(echo_api: str) -> None:
    response = httpx.post(
        f"{echo_api}/models/llama3.2%3Alatest?a=1&a=2",
        headers=[
            ("X-Tag", "one"),
            ("X-Tag", "two"),
            ("Cookie", "s=1; t=2"),
            ("Content-Type", "application/json"),
        ],
        content=b'{"hello": "world"}',
    )

    event = echoed(response)
    assert event["rawPath"] == "/models/llama3.2:latest"
    assert event["pathParameters"] == {"proxy": "models/llama3.2:latest"}
    assert event["queryStringParameters"] == {"a": "1,2"}
    assert event["headers"]["x-tag"] == "one,two"  # type: ignore[index]
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["body"] == '{"hello": "world"}'
    assert event["isBase64Encoded"] is False
    assert response.headers["set-cookie"] == "seen=1"
    # The function's own content-length is replaced by the true one.
    assert int(response.headers["content-length"]) == len(response.content)


def test_a_chunked_binary_body_is_joined_and_base64_encoded(echo_api: str) -> None:
    raw = bytes(range(256)) * 100

    def chunks() -> Iterator[bytes]:
        yield from (raw[i : i + 1000] for i in range(0, len(raw), 1000))

    event = echoed(
        httpx.post(
            f"{echo_api}/upload",
            headers={"content-type": "application/octet-stream"},
            content=chunks(),
        )
    )

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(str(event["body"])) == raw


def test_a_body_over_10_mb_is_refused_with_413(echo_api: str) -> None:
    declared = httpx.post(f"{echo_api}/upload", content=b"x" * (10 * 1024 * 1024 + 1))

    def chunks() -> Iterator[bytes]:
        for _ in range(11):
            yield b"x" * (1024 * 1024)

    chunked = httpx.post(f"{echo_api}/upload", content=chunks())

    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json() == {"message": "Request Entity Too Large"}


def test_a_malformed_request_is_refused_with_400(echo_api: str) -> None:
    with socket.create_connection(address(echo_api), timeout=10) as conn:
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = read_until_closed(conn)

    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b'{"message": "Bad Request"}')


def test_a_head_that_never_ends_is_refused_with_431(echo_api: str) -> None:
    with socket.create_connection(address(echo_api), timeout=10) as conn:
        conn.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000)
        answer = read_until_closed(conn)

    assert answer.startswith(b"HTTP/1.1 431 ")


def test_expect_100_continue_is_answered_before_the_body_is_sent(echo_api: str) -> None:
    body = b'{"late": true}'
    with socket.create_connection(address(echo_api), timeout=10) as conn:
        conn.sendall(
            b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        interim = conn.recv(100)
        conn.sendall(body)
        conn.shutdown(socket.SHUT_WR)
        answer = read_until_closed(conn)

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"body": "{\\"late\\": true}"' in answer


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /old HTTP/1.0\r\n\r\n",
        b"GET /old HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    ],
    ids=["http-1.0", "upgrade-h2c"],
)
def test_http_1_0_and_upgrade_requests_get_one_answer_and_the_connection_closes(
    echo_api: str, request_head: bytes
) -> None:
    with socket.create_connection(address(echo_api), timeout=10) as conn:
        conn.sendall(request_head)
        answer = read_until_closed(conn)

    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close\r\n" in answer


def test_keep_alive_serves_one_request_after_another(echo_api: str) -> None:
    # http.client, unlike httpx, does not retry on a fresh connection when the server has
    # closed the previous one: every request must be answered on the first connection.
    conn = http.client.HTTPConnection(*address(echo_api), timeout=10)
    paths = []
    for number in range(3):
        conn.request("GET", f"/{number}")
        response = conn.getresponse()
        assert response.status == 200
        paths.append(json.loads(response.read())["event"]["rawPath"])
    first_socket = conn.sock
    conn.request("GET", "/last")
    conn.getresponse().read()

    assert paths == ["/0", "/1", "/2"]
    assert conn.sock is first_socket
    conn.close()


def test_keep_alive_serves_pipelined_requests_and_connection_close_ends_it(
    echo_api: str,
) -> None:
    request = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(address(echo_api), timeout=10) as conn:
        conn.sendall(request + last)
        answer = read_until_closed(conn)

    assert answer.count(b"HTTP/1.1 200 ") == 2
    assert b'"rawPath": "/one"' in answer and b'"rawPath": "/two"' in answer


def test_a_function_that_raises_is_a_500_as_api_gateway_gives_it(echo_api: str) -> None:
    response = httpx.get(f"{echo_api}/raise")

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_a_header_that_would_split_the_response_is_a_500(echo_api: str) -> None:
    response = httpx.get(f"{echo_api}/bad-header")

    assert response.status_code == 500
    assert "set-cookie" not in response.headers
    # The connection still serves the next request.
    assert httpx.get(f"{echo_api}/after").status_code == 200


def test_a_failure_of_the_local_api_itself_is_a_500_and_the_worker_lives_on(
    echo_template: Path,
) -> None:
    class FailingApi(LocalApi):
        def dispatch(self, request: HttpRequest) -> tuple[HttpResponse, str]:
            if request.path == "/fail":
                raise RuntimeError("a bug in the local API")
            return super().dispatch(request)

    server = Server(FailingApi(read_application(echo_template), workers=1)).start()
    try:
        with httpx.Client(base_url=server.url) as client:
            failed = client.get("/fail")
            after = client.get("/after")
    finally:
        server.stop()

    assert failed.status_code == 500
    assert failed.json() == {"message": "Internal Server Error"}
    assert after.status_code == 200


def test_process_workers_serve_concurrent_requests_apart_from_the_server(
    serve: Callable[..., str],
) -> None:
    url = serve(processes=True, workers=4)

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: httpx.get(f"{url}/slow", timeout=30), range(4)))

    pids = {response.json()["pid"] for response in responses}
    assert os.getpid() not in pids
    assert len(pids) > 1


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_connections_opened_at_once_are_spread_evenly_over_the_workers(
    serve: Callable[..., str], processes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each worker keeps the connections it accepts. Taken as they come, a burst of them gathers
    # on whichever worker woke first, whose requests then queue while the other workers idle.
    monkeypatch.setattr(http11, "ACCEPT_PATIENCE_SECONDS", 60.0)  # no fallback meanwhile
    url = serve(processes=processes, workers=4)
    connections = [http.client.HTTPConnection(*address(url), timeout=10) for _ in range(8)]
    for conn in connections:
        conn.connect()

    workers = [worker_answering(conn, "/who") for conn in connections]

    assert sorted(Counter(workers).values()) == [2, 2, 2, 2]
    for conn in connections:
        conn.close()


def test_a_worker_takes_more_than_its_share_when_the_others_are_all_busy(
    serve: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Patience long enough that the first two connections surely go one to each worker, even
    # on a busy machine; the last one below waits it out.
    monkeypatch.setattr(http11, "ACCEPT_PATIENCE_SECONDS", 1.0)
    url = serve(processes=False, workers=2)
    release = tmp_path / "release"
    idle = http.client.HTTPConnection(*address(url), timeout=10)
    idle.connect()
    busy = http.client.HTTPConnection(*address(url), timeout=10)
    busy.connect()
    first = worker_answering(idle, "/first")
    busy.request("GET", f"/hold?until={release}")  # the other worker: busy until released
    wait_for(release.with_suffix(".holding"))

    # The idle worker already holds more connections than the busy one after the first of
    # these; the second waits its patience, then the idle worker takes it too.
    later = [http.client.HTTPConnection(*address(url), timeout=10) for _ in range(2)]
    answered_by = [worker_answering(conn, "/later") for conn in later]
    release.touch()
    held = busy.getresponse()

    assert answered_by == [first, first]
    assert held.status == 200
    assert json.loads(held.read())["worker"] != first
    for conn in [idle, busy, *later]:
        conn.close()


def test_a_worker_process_that_dies_is_replaced(serve: Callable[..., str]) -> None:
    url = serve(processes=True, workers=1)
    first = httpx.get(f"{url}/before").json()["pid"]

    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/crash")

    deadline = time.monotonic() + 20
    while True:
        try:
            after = httpx.get(f"{url}/after", timeout=5)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
    assert after.status_code == 200
    assert after.json()["pid"] != first


def worker_answering(conn: http.client.HTTPConnection, path: str) -> str:
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200
    worker: str = json.loads(response.read())["worker"]
    return worker


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def read_until_closed(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
