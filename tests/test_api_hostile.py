"""Hostile and edge input at a running agent's control API: tokens before bodies, body
limits, out-of-range numbers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.http_tls import client_context
from tests.conftest import TOKEN, AgentProcess

MiB = 1 << 20
BIG = 2**63  # one above the largest id the store can hold
ELEMENT_TOKEN = "element-token-for-the-hostile-tests"


def _peak_rss(pid: int) -> int:
    """VmHWM (peak resident set) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def _raw(
    port: int, head: str, body: Iterable[bytes] = (), timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes, float]:
    """One HTTP/1.1 exchange over a raw socket; the body is sent from a thread (errors
    ignored: the agent may close the connection before it is all sent).

    Returns: status, headers, body and the seconds until the status line arrived.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    started = time.monotonic()
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")

    def pump(chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass

    sender = threading.Thread(target=pump, args=(iter(body),), daemon=True)
    sender.start()
    received = b""
    first_line_at = 0.0
    try:
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            if not data:
                break
            received += data
            if not first_line_at and b"\r\n" in received:
                first_line_at = time.monotonic() - started
        head_part, _, rest = received.partition(b"\r\n\r\n")
        lines = head_part.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
    finally:
        sock.close()
        sender.join(timeout)
    return int(lines[0].split()[1]), headers, rest[:length], first_line_at


def _megabytes(total: int, size: int = MiB) -> Iterator[bytes]:
    chunk = b"x" * size
    for _ in range(total // size):
        yield chunk


def _chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    piece = b"x" * size
    for _ in range(total // size):
        yield f"{size:x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


@pytest.fixture(params=["httptools", "h11"])
def http_impl(request: pytest.FixtureRequest) -> str:
    """Both HTTP/1.1 implementations the agent can serve with get the same guard."""
    value: str = request.param
    return value


@pytest.fixture
def hostile_agent(agent_factory: Any, http_impl: str) -> AgentProcess:
    started: AgentProcess = agent_factory(
        {"sharing": {"element_token": ELEMENT_TOKEN}, "api": {"http": http_impl}}
    ).start()
    # The line comes just after uvicorn starts serving: health may answer before it.
    deadline = time.monotonic() + 10
    while f"({http_impl})" not in started.log_text():
        assert time.monotonic() < deadline, started.log_text()[-2000:]
        time.sleep(0.05)
    return started


def test_100_mb_without_a_token_is_refused_before_it_is_read(
    hostile_agent: AgentProcess,
) -> None:
    agent = hostile_agent
    assert agent.proc is not None
    with agent.http() as http:  # warm the routes up: the peak below is the body's doing
        http.get("/api/v1/alarms")
    before = _peak_rss(agent.proc.pid)
    size = 100 * MiB
    head = (
        f"POST /api/v1/alarms HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        f"Content-Length: {size}\n"
    )
    status, headers, body, elapsed = _raw(agent.port, head, _megabytes(size))
    assert status == 401, body
    assert headers["www-authenticate"] == "Bearer"
    assert elapsed < 2.0
    grown = _peak_rss(agent.proc.pid) - before
    assert grown < 20 * MiB, f"the agent's peak RSS grew {grown / MiB:.0f} MiB"
    # The same without a token on an element route, and with the elements' token on an
    # operators' route: refused from the headers as well.
    for path, token in (("/api/v1/sharing/updates", None), ("/api/v1/alarms", ELEMENT_TOKEN)):
        auth = f"Authorization: Bearer {token}\n" if token else ""
        head = f"POST {path} HTTP/1.1\nHost: x\n{auth}Content-Length: {size}\n"
        status, _, _, elapsed = _raw(agent.port, head, _megabytes(size))
        assert (status, elapsed < 2.0) == (401, True), path
    assert _peak_rss(agent.proc.pid) - before < 20 * MiB
    with agent.http() as http:
        assert http.get("/api/v1/status").status_code == 200


def test_a_too_large_content_length_is_refused_at_once(hostile_agent: AgentProcess) -> None:
    head = (
        f"POST /api/v1/alarms HTTP/1.1\nHost: x\nAuthorization: Bearer {TOKEN}\n"
        f"Content-Type: application/json\nContent-Length: {MiB + 1}\n"
    )
    # Nothing of the body is sent: the answer must not wait for it.
    status, headers, body, elapsed = _raw(hostile_agent.port, head, timeout=5)
    assert status == 413
    assert "larger than 1048576" in httpx.Response(413, content=body).json()["error"]
    assert headers["connection"] == "close"
    assert elapsed < 1.0
    # The elements' token on its own routes passes the token check and meets the limit.
    head = (
        f"POST /api/v1/sharing/updates HTTP/1.1\nHost: x\nAuthorization: Bearer "
        f"{ELEMENT_TOKEN}\nContent-Length: {10 * MiB}\n"
    )
    assert _raw(hostile_agent.port, head, timeout=5)[0] == 413


def test_a_chunked_body_over_the_limit_is_cut_off(hostile_agent: AgentProcess) -> None:
    head = (
        f"POST /api/v1/alarms HTTP/1.1\nHost: x\nAuthorization: Bearer {TOKEN}\n"
        f"Content-Type: application/json\nTransfer-Encoding: chunked\n"
    )
    status, _, body, _ = _raw(hostile_agent.port, head, _chunked(50 * MiB))
    assert status == 413, body
    assert "larger than 1048576 bytes" in body.decode()
    # Under the limit, the body reaches validation (422 from the text's length, not 413).
    with hostile_agent.http() as http:
        text = "x" * (MiB - 1024)
        response = http.post(
            "/api/v1/alarms", json={"type": "sync-failed", "resource": "r", "text": text}
        )
        assert response.status_code == 422, response.text
        assert http.get("/api/v1/health").status_code == 200


def test_max_body_is_configurable(agent_factory: Any) -> None:
    agent = agent_factory({"api": {"max_body": "64KiB"}}).start()
    with agent.http() as http:
        response = http.post(
            "/api/v1/alarms",
            json={"type": "sync-failed", "resource": "r", "text": "y" * 70_000},
        )
        assert response.status_code == 413
        assert "65536" in response.json()["error"]
        ok = http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "r"})
        assert ok.status_code == 200


def test_numbers_out_of_range_are_4xx_naming_the_field(hostile_agent: AgentProcess) -> None:
    cases: list[tuple[str, str, dict[str, Any] | None, str]] = [
        ("GET", f"/api/v1/alarms/{BIG}", None, "alarm_id"),
        ("GET", "/api/v1/alarms/0", None, "alarm_id"),
        ("POST", f"/api/v1/alarms/{BIG}/clear", {}, "alarm_id"),
        ("POST", f"/api/v1/alarms/{2**64}/ack", {}, "alarm_id"),
        ("POST", f"/api/v1/alarms/{BIG}/unack", {}, "alarm_id"),
        ("GET", f"/api/v1/alarms?after={BIG}", None, "after"),
        ("GET", f"/api/v1/events?after={BIG}", None, "after"),
        ("GET", f"/api/v1/jobs/{BIG}", None, "job_id"),
        ("POST", f"/api/v1/sharing/conflicts/{BIG}/resolve", {"take": "hub"}, "conflict_id"),
        ("POST", f"/api/v1/distributions/{BIG}/retry", {}, "distribution_id"),
        ("DELETE", f"/api/v1/distributions/{BIG}", None, "distribution_id"),
        ("POST", "/api/v1/elements", {"name": "e", "url": "http://x", "interval": BIG}, "interval"),
        ("PATCH", "/api/v1/elements/e", {"interval": BIG}, "interval"),
    ]
    with hostile_agent.http() as http:
        for method, path, body, field in cases:
            response = http.request(method, path, json=body)
            assert response.status_code == 422, (path, response.status_code, response.text)
            assert field in response.json()["error"], (path, response.text)
        assert http.get("/api/v1/status").status_code == 200
    log = hostile_agent.log_text()
    assert "Traceback" not in log, log[-3000:]
    cli = hostile_agent.cli("alarms", "show", str(BIG), check=False)
    assert cli.returncode == 1
    assert "alarm_id" in cli.stderr
    assert "Traceback" not in cli.stderr + cli.stdout


def test_the_guard_and_the_routes_agree_on_every_token(hostile_agent: AgentProcess) -> None:
    """Each route of the OpenAPI schema, with each token: the guard (from the headers)
    and the route's own dependency must give the same answer."""
    schema = httpx.get(f"{hostile_agent.url}/openapi.json", verify=client_context()).json()
    element_routes = set()
    with httpx.Client(base_url=hostile_agent.url, timeout=30, verify=client_context()) as http:
        for path, operations in schema["paths"].items():
            concrete = path.replace("{key}", "k")
            for name in ("alarm_id", "job_id", "conflict_id", "distribution_id"):
                concrete = concrete.replace("{" + name + "}", "1")
            concrete = concrete.replace("{name}", "nope").replace("{cls}", "user")
            for method in operations:
                if (method, path) in {("post", "/api/v1/shutdown")}:
                    continue
                if path == "/api/v1/health":
                    assert http.request(method, concrete).status_code == 200
                    continue
                anonymous = http.request(method, concrete, json={})
                assert anonymous.status_code == 401, (method, path)
                element = http.request(
                    method, concrete, json={}, headers={"Authorization": f"Bearer {ELEMENT_TOKEN}"}
                )
                if element.status_code != 401:
                    element_routes.add((method, path))
    assert element_routes == {
        ("post", f"/api/v1/sharing/{name}") for name in ("start", "sync", "updates", "device-data")
    } | {("post", "/api/v1/sync/notify")}


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True when the agent closes the connection within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_connections_that_never_finish_their_headers_are_closed(
    agent_factory: Any, http_impl: str
) -> None:
    # Before: uvicorn kept such connections for ever, so anyone who could reach the port
    # could hold the agent's file descriptors by sending nothing, or a byte now and then.
    agent: AgentProcess = agent_factory(
        {"api": {"header_timeout": "1s", "http": http_impl}}
    ).start()
    silent = socket.create_connection(("127.0.0.1", agent.port))
    trickle = socket.create_connection(("127.0.0.1", agent.port))
    started = time.monotonic()
    trickle.sendall(b"GET /api/v1/health HTTP/1.1\r\n")
    for _ in range(3):  # a byte every 0.3 s does not extend the deadline
        time.sleep(0.3)  # the pace of the trickle is what is tested
        trickle.sendall(b"X")
    assert _closed_by_peer(trickle, 5)
    assert _closed_by_peer(silent, 5)
    assert time.monotonic() - started < 5
    # A client that sends its headers in time, and keeps the connection, is served.
    with httpx.Client(base_url=agent.url, timeout=5, verify=client_context()) as client:
        for _ in range(3):
            assert client.get("/api/v1/health").status_code == 200
            time.sleep(1.2)  # past header_timeout between requests: keep-alive is not cut
    silent.close()
    trickle.close()


def test_a_pipelined_request_trickling_its_headers_is_closed(
    agent_factory: Any, http_impl: str
) -> None:
    # A whole request, then the start of a second one in the same packet: answering the
    # first must not stop the second's clock (uvicorn's keep-alive timer is no help: every
    # byte of the trickle cancels it).
    agent: AgentProcess = agent_factory(
        {"api": {"header_timeout": "1s", "http": http_impl}}
    ).start()
    sock = socket.create_connection(("127.0.0.1", agent.port))
    started = time.monotonic()
    sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/health HTTP/1.1\r\n")
    sock.settimeout(0.3)
    received = b""
    closed = False
    while not closed and time.monotonic() - started < 8:
        try:
            data = sock.recv(4096)
            closed = not data
            received += data
        except TimeoutError:
            try:
                sock.sendall(b"X")  # a byte every 0.3 s
            except OSError:
                closed = True
        except ConnectionResetError:
            closed = True
    sock.close()
    assert received.startswith(b"HTTP/1.1 200"), received
    assert closed, "the trickling connection was kept"
    assert time.monotonic() - started < 4  # the 1 s deadline, not the 5 s keep-alive


def test_connections_past_the_cap_are_closed_at_once(agent_factory: Any, http_impl: str) -> None:
    agent: AgentProcess = agent_factory(
        {"api": {"max_connections": 4, "header_timeout": "30s", "http": http_impl}}
    ).start()
    held = [socket.create_connection(("127.0.0.1", agent.port)) for _ in range(4)]
    try:
        # Accepted in order: the fifth comes after the four held ones.
        extra = socket.create_connection(("127.0.0.1", agent.port))
        assert _closed_by_peer(extra, 5)
        extra.close()
    finally:
        for sock in held:
            sock.close()

    # Once they are gone, the API serves again.
    def healthy() -> bool:
        try:
            return (
                httpx.get(
                    f"{agent.url}/api/v1/health", timeout=2, verify=client_context()
                ).status_code
                == 200
            )
        except httpx.TransportError:
            return False

    deadline = time.monotonic() + 10
    while not healthy():
        assert time.monotonic() < deadline, "the API did not serve again"
        time.sleep(0.1)
    assert "connections refused at the cap of 4" in agent.log_text()
