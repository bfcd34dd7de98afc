"""What an operator moving from the original proxy expects of the data plane, on the real servers.

Timeouts (a silent tool gets a 504, a WebSocket keeps its long timeout), canonical redirects from
registerCanonical, uploads up to client_max_body_size, the http:// redirect fix, gzip, the health
check body, branded pages for nginx's own errors, and the backend the slow path chose in the log.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli, wait_until
from tests.lua.proxyclient import Proxy, Reply, access_log_line, ws_receive_text, ws_send_text
from tests.lua.test_urlproxy import new_tool, sample_tool, store
from toolforgectl.adapters.processes import free_port
from toolforgectl.adapters.render import HOP_HEADER
from toolforgectl.core import validate
from toolforgectl.core.models import Attribution
from toolforgectl.lab import fleet

ACTOR = Attribution("test")
READ_TIMEOUT = 2
DOMAIN = "toolforge.example"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """A lab with a short read timeout, a 2 MB body limit and canonical redirects served.

    Its sample tools register with registerCanonical, as every webservice-runner does, so `hello`
    and `echo` redirect here; the other tests route tools of their own to echo's backend.
    """
    directory = tmp_path_factory.mktemp("compat")
    settings = {"read_timeout": READ_TIMEOUT, "client_max_body_size": "2m", "canonical_domain": DOMAIN}
    state = fleet.up(directory, dataplane=settings)
    try:
        yield Proxy(state)
    finally:
        fleet.down(directory)


@pytest.fixture
def silent_backend() -> Iterator[str]:
    """A backend that accepts connections (the kernel does, from the backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def raw(proxy: Proxy, data: bytes, kind: str = "https") -> Reply:
    """Send `data` as it is (a request http.client would not send) and read the answer to the end."""
    sock = socket.create_connection(("127.0.0.1", proxy.port(kind)), timeout=10)
    if kind == "https":
        sock = proxy.tls().wrap_socket(sock, server_hostname="localhost")
    with sock:
        sock.sendall(data)
        answer = b""
        while chunk := _recv(sock):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return Reply(int(status_line.split(" ")[1]), headers, body.decode("utf-8", "replace"))


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (ConnectionResetError, ssl.SSLError):  # nginx may reset after answering an error
        return b""


def branded(reply: Reply, status: int, title: str) -> bool:
    return reply.status == status and f"<h1>{title}</h1>" in reply.body and "Toolforge" in reply.body


# B.5 Timeouts ------------------------------------------------------------------------------------


def test_a_tool_that_never_answers_gets_a_branded_504_after_read_timeout(
    lab: Proxy, silent_backend: str
) -> None:
    store(lab).set_route("silent", ".*", validate.backend(silent_backend), ACTOR)
    lab.caught_up()
    for path in ("slow", "front"):  # the first request reads the routes, the second is routed from cache
        started = time.monotonic()
        reply = lab.get(f"/silent/{path}")
        took = time.monotonic() - started
        assert branded(reply, 504, "Tool timed out"), reply
        # The front waits a second longer than the slow path, so the slow path's 504 comes first.
        assert READ_TIMEOUT <= took < READ_TIMEOUT + 5, f"{path}: 504 after {took:.1f}s"
        line = access_log_line(lab, f"/silent/{path}")
        assert f"path={path}" in line and '" 504 ' in line
    assert f"chosen={silent_backend}" in access_log_line(lab, "/silent/slow")


def test_an_upgrade_other_than_websocket_gets_the_plain_read_timeout(lab: Proxy, silent_backend: str) -> None:
    # Only `Upgrade: websocket` is passed on (A.3), so only it may take the WebSocket's long timeout.
    store(lab).set_route("silent-h2c", ".*", validate.backend(silent_backend), ACTOR)
    lab.caught_up()
    for path in ("slow", "front"):
        started = time.monotonic()
        reply = lab.get(f"/silent-h2c/{path}", headers={"Upgrade": "h2c", "Connection": "Upgrade"})
        assert branded(reply, 504, "Tool timed out"), reply
        assert time.monotonic() - started < READ_TIMEOUT + 5
        assert f"path={path}" in access_log_line(lab, f"/silent-h2c/{path}")


def test_a_websocket_carrying_the_hop_marker_gets_the_508_too(lab: Proxy) -> None:
    # The loop check (A.5) comes before the jump to the WebSocket location.
    tool = new_tool(lab, "ws-loop", "echo", "front")
    head = (
        f"GET /{tool}/socket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{HOP_HEADER}: {fleet.PROXY_NAME}\r\n\r\n"
    )
    assert branded(raw(lab, head.encode()), 508, "Loop detected")
    with lab.websocket(f"/{tool}/socket") as (_sock, status):
        assert status == "HTTP/1.1 101 Switching Protocols"
    # Another fleet's marker is no loop here: the WebSocket is still passed on as one.
    with lab.websocket(f"/{tool}/socket", "WebSocket", {HOP_HEADER: "some-other-proxy"}) as (sock, status):
        assert status == "HTTP/1.1 101 Switching Protocols"
        ws_send_text(sock, "past another marker")
        assert ws_receive_text(sock) == "past another marker"


def test_websockets_keep_their_long_timeout_on_every_path(
    lab: Proxy, tmp_path: Path, silent_backend: str
) -> None:
    pair = (lab.info["certificate"], lab.info["certificate"].replace(".crt", ".key"))
    secure = sample_tool("secure", tmp_path / "tls-tool.log", tls=pair)
    try:
        store(lab).set_route("ws-tls", ".*", validate.backend(f"https://127.0.0.1:{secure.port}"), ACTOR)
        store(lab).set_route("ws-silence", ".*", validate.backend(silent_backend), ACTOR)
        tools = [
            new_tool(lab, "ws-slow", "echo", "slow"),
            new_tool(lab, "ws-front", "echo", "front"),
            "ws-tls",
        ]
        lab.caught_up()
        with (
            lab.websocket(f"/{tools[0]}/socket") as (slow, slow_status),
            lab.websocket(f"/{tools[1]}/socket") as (front, front_status),
            lab.websocket(f"/{tools[2]}/socket") as (tls, tls_status),
        ):
            assert {slow_status, front_status, tls_status} == {"HTTP/1.1 101 Switching Protocols"}
            # The sockets stay silent until plain requests to a silent tool have given up on both
            # paths (the front waits longest): the condition, not a clock, says the read timeout
            # of a plain request has passed.
            for path in ("slow", "front"):
                assert lab.get(f"/ws-silence/{path}").status == 504
            for sock, name in ((slow, "slow"), (front, "front"), (tls, "tls")):
                ws_send_text(sock, f"still there ({name})")
                assert ws_receive_text(sock) == f"still there ({name})"
    finally:
        secure.stop()
    assert "path=slow" in access_log_line(lab, f"/{tools[0]}/socket")
    assert "path=front" in access_log_line(lab, f"/{tools[1]}/socket")


# C.4 Canonical redirects -------------------------------------------------------------------------


def test_a_tool_registered_canonical_redirects_to_its_canonical_host(lab: Proxy) -> None:
    # The lab's webservice-runner sent registerCanonical for hello: proxylistener recorded the
    # redirect after the route; once nginx routes by that write, hello redirects.
    wait_until(lambda: store(lab).redirects("hello"), "proxylistener to record hello's redirect")
    lab.caught_up()
    reply = lab.get("/hello/a/b%20c?x=1&y=%2F")
    assert reply.status == 301
    assert reply.headers["location"] == f"https://hello.{DOMAIN}/a/b%20c?x=1&y=%2F"
    assert lab.get("/hello").headers["location"] == f"https://hello.{DOMAIN}/"
    posted = lab.request("POST", "/hello/form?q=1", body=b"a=b")
    assert (posted.status, posted.headers["location"]) == (308, f"https://hello.{DOMAIN}/form?q=1")
    assert "chosen=redirect" in access_log_line(lab, "/hello/a/b%20c?x=1&y=%2F")
    # A tool without a redirect key on the same backend is proxied as before.
    assert lab.backend_of(f"/{new_tool(lab, 'not-canonical', 'echo', 'front')}/x") == "echo"


# C.5 What the original's nginx did ---------------------------------------------------------------


def test_uploads_up_to_client_max_body_size_reach_the_tool(lab: Proxy) -> None:
    tool = new_tool(lab, "uploads", "echo", "front")
    body = b"x" * 1_500_000  # over nginx's own 1m default, under the lab's 2m
    reply = lab.request("POST", f"/{tool}/upload", body=body)
    assert reply.status == 200 and reply.json()["headers"]["content-length"] == str(len(body))


def test_a_body_over_client_max_body_size_gets_a_branded_413(lab: Proxy) -> None:
    tool = new_tool(lab, "too-big", "echo", "front")
    head = f"POST /{tool}/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3000000\r\n\r\n"
    assert branded(raw(lab, head.encode() + b"x" * 1000), 413, "Request too large")


def test_an_http_redirect_from_a_tool_is_rewritten_to_https(lab: Proxy) -> None:
    tool = new_tool(lab, "redirecting", "echo", "front")
    reply = lab.get(f"/{tool}/old?redirect_to=/{tool}/new%3Fa%3D1")
    assert reply.status == 302
    assert reply.headers["location"] == f"https://127.0.0.1:{lab.port('https')}/{tool}/new?a=1"


def test_text_answers_are_gzipped_for_clients_that_accept_it(lab: Proxy) -> None:
    tool = new_tool(lab, "compressed", "echo", "front")
    plain = lab.get(f"/{tool}/x")
    assert "content-encoding" not in plain.headers and plain.json()["tool"] == "echo"
    conn = http.client.HTTPSConnection("127.0.0.1", lab.port("https"), context=lab.tls(), timeout=10)
    try:
        conn.request("GET", f"/{tool}/x", headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        assert response.getheader("Content-Encoding") == "gzip"
        assert "Accept-Encoding" in (response.getheader("Vary") or "")
        assert json.loads(gzip.decompress(response.read()))["tool"] == "echo"
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["https", "http"])
@pytest.mark.parametrize(
    ("request_text", "status", "title"),
    [
        ("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Bad request"),
        ("GET /" + "a" * 9000 + " HTTP/1.1\r\nHost: localhost\r\n\r\n", 414, "Address too long"),
        (
            "GET /x HTTP/1.1\r\nHost: localhost\r\nCookie: " + "a" * 9000 + "\r\n\r\n",
            400,
            "Request header too large",
        ),
    ],
    ids=["400", "414", "494"],
)
def test_requests_nginx_refuses_get_branded_pages(
    lab: Proxy, kind: str, request_text: str, status: int, title: str
) -> None:
    reply = raw(lab, request_text.encode(), kind)
    assert branded(reply, status, title), reply
    assert "nginx/" not in reply.body


# D.2 The backend the slow path chose, in the log of its errors -----------------------------------


def test_a_502_from_a_dead_backend_logs_the_chosen_backend(lab: Proxy) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store(lab).set_route("dead", ".*", validate.backend(dead), ACTOR)
    lab.caught_up()
    assert branded(lab.get("/dead/first"), 502, "Tool unreachable")
    line = access_log_line(lab, "/dead/first")
    assert (
        '" 502 ' in line
        and f"tool=dead backend={dead.removeprefix('http://')} path=slow chosen={dead} " in line
    )


def test_a_503_logs_why_nothing_was_chosen(lab: Proxy) -> None:
    assert branded(lab.get("/nobody-here/x"), 503, "Tool unavailable")
    assert "tool=nobody-here backend=- path=slow chosen=none " in access_log_line(lab, "/nobody-here/x")


# routes show lists what registerCanonical recorded (the CLI against the lab's Redis) ---------------


def test_routes_show_lists_the_redirect_register_canonical_recorded(lab: Proxy) -> None:
    wait_until(lambda: store(lab).redirects("echo"), "proxylistener to record echo's redirect")
    shown = run_cli("--redis", lab.info["redis"], "routes", "show", "echo", "--no-probe", "--json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["data"]["redirects"] == {".*": "echo.toolforge.org"}
