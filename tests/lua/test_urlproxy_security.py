"""No tool reaches another tool's visitors (issue 10, section A): real nginx + Redis + sample tools.

The red-team reproductions are here as they were reported: path confusion through encoded dot
segments, Service-Worker-Allowed, Upgrade tokens and forwarding headers, forged Host names and IP
addresses in host mode, the client address policy, and a tool whose server relays back to the proxy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.lua import test_compat as compat
from tests.lua import test_urlproxy as base
from tests.lua.proxyclient import Proxy, ws_receive_text, ws_send_text
from toolforgectl.adapters.processes import Process, free_port, spawn
from toolforgectl.adapters.render import HOP_HEADER
from toolforgectl.adapters.routestore import prefix_key
from toolforgectl.core import validate
from toolforgectl.lab import fleet, sampletool

ACTOR = base.ACTOR


def lab_tool_log(proxy: Proxy, sample: str) -> Path:
    """The log of a lab sample tool (`hello`, `echo`), as the lab recorded it: its runner's lines and
    one JSON line per request."""
    return Path(next(record.log for record in proxy.state.processes if record.tool == sample))


def requests_seen(log: Path) -> list[dict[str, Any]]:
    """The requests a sample tool logged, in order (its runner logs JSON lines of its own too)."""
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    parsed = [json.loads(line) for line in lines if line.startswith("{")]
    return [seen for seen in parsed if "headers" in seen and "uri" in seen]


def hosts_seen(proxy: Proxy, sample: str) -> list[str]:
    """The Host of every request a lab sample tool saw."""
    return [seen["headers"]["host"] for seen in requests_seen(lab_tool_log(proxy, sample))]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start sample tools of our own (sampletool.command's options); all are stopped after the test."""
    tools: list[Process] = []

    def start(name: str, headers: tuple[str, ...] = (), relay: str = "") -> Process:
        port = free_port()
        argv = sampletool.command(name, "127.0.0.1", port, headers=headers, relay=relay)
        tools.append(spawn(f"{name} tool", argv, tmp_path / f"{name}.log", "127.0.0.1", port))
        return tools[-1]

    yield start
    for tool in tools:
        tool.stop()


def route_to(proxy: Proxy, tool: str, process: Process, path: str) -> None:
    """Route `tool` to a sample tool we started; its next request takes `path` (as base.new_tool)."""
    base.store(proxy).set_route(tool, ".*", validate.backend(f"http://127.0.0.1:{process.port}"), ACTOR)
    proxy.caught_up()
    if path == "front":
        proxy.get(f"/{tool}/warm")


# A.1: `{tool}` is the tool the client names, `{victim}` the one nginx's decoded `$uri` names.
CONFUSING_PATHS = [
    "/{tool}/..%2f{victim}/x",
    "/{tool}/%2e%2e%2f{victim}/x",
    "/{tool}/%2e%2e/{victim}/x",
    "/{tool}/..%2F{victim}/x",
    "/{nosuch}/..%2f{victim}/x",
    "/{tool}%2f..%2f{victim}/x",
]


@pytest.mark.parametrize("path", ["slow", "front"])
@pytest.mark.parametrize("spelling", CONFUSING_PATHS)
def test_a_path_that_decodes_to_another_tool_never_reaches_it(lab: Proxy, spelling: str, path: str) -> None:
    """`GET /hello/..%2fecho/x` with hello's cookie: echo (the victim) never sees it, on either path."""
    case = f"{CONFUSING_PATHS.index(spelling)}-{path}"
    tool, victim = f"confused-{case}", f"victim-{case}"
    routes = base.store(lab)
    routes.set_route(tool, ".*", base.backend(lab, "hello"), ACTOR)
    routes.set_route(victim, ".*", base.backend(lab, "echo"), ACTOR)
    lab.caught_up()
    if path == "front":  # both cached: before the fix the front alone sent this to the victim
        assert lab.backend_of(f"/{tool}/warm") == "hello" and lab.backend_of(f"/{victim}/warm") == "echo"
    uri = spelling.format(tool=tool, victim=victim, nosuch=f"nosuch-{case}") + f"?case={case}"
    cookie = f"session=hello-only-{case}"
    reply = lab.get(uri, headers={"Cookie": cookie})
    line = base.access_log_line(lab, uri)
    if spelling.startswith("/{tool}/"):  # the client named `tool`: it gets the request, as it was sent
        assert (reply.status, reply.json()["tool"], reply.json()["uri"]) == (200, "hello", uri)
        assert reply.json()["headers"]["cookie"] == cookie
        assert f"path={path}" in line
    else:  # no tool is named by the path as sent
        assert reply.status == 503 and "Tool unavailable" in reply.body
    assert cookie not in lab_tool_log(lab, "echo").read_text(encoding="utf-8")


def test_service_worker_allowed_never_reaches_browsers_in_path_mode(
    lab: Proxy, started: Callable[..., Process]
) -> None:
    """A tool must not widen its service workers' scope to `/`: every tool's pages share the origin."""
    sample = started("sw-claim", headers=("Service-Worker-Allowed: /", "X-Sample: kept"))
    for path in ("slow", "front"):
        route_to(lab, f"sw-{path}", sample, path)
        reply = lab.get(f"/sw-{path}/sw.js")
        assert f"path={path}" in base.access_log_line(lab, f"/sw-{path}/sw.js")
        assert reply.status == 200 and reply.headers["x-sample"] == "kept"
        assert "service-worker-allowed" not in reply.headers


@pytest.mark.parametrize("path", ["slow", "front"])
def test_only_websocket_upgrades_are_passed_on(lab: Proxy, path: str) -> None:
    """`Upgrade: h2c` (or any token but websocket) would open a raw tunnel past the proxy's headers."""
    tool = base.new_tool(lab, f"upgrade-{path}", "echo", path)
    sent = {"Upgrade": "h2c", "Connection": "Upgrade, HTTP2-Settings", "HTTP2-Settings": "AAMAAABkAAQAAP__"}
    seen = lab.get(f"/{tool}/tunnel", headers=sent).json()["headers"]
    assert f"path={path}" in base.access_log_line(lab, f"/{tool}/tunnel")
    assert "upgrade" not in seen
    assert "upgrade" not in seen.get("connection", "").lower()


def test_a_websocket_upgrade_in_any_case_still_goes_through(lab: Proxy) -> None:
    base.new_tool(lab, "upgrade-case", "echo", "front")
    with lab.websocket("/upgrade-case/socket", upgrade="WebSocket") as (sock, status):
        assert status == "HTTP/1.1 101 Switching Protocols"
        ws_send_text(sock, "still a websocket")
        assert ws_receive_text(sock) == "still a websocket"


@pytest.mark.parametrize("path", ["slow", "front"])
def test_client_ip_forwarded_gives_tools_the_real_peer_only(own_lab: Callable[..., Proxy], path: str) -> None:
    proxy = own_lab(client_ip="forwarded")
    tool = base.new_tool(proxy, f"forwarded-{path}", "hello", path)
    seen = proxy.get(f"/{tool}/x", headers=base.FORGED_HEADERS).json()["headers"]
    assert f"path={path}" in base.access_log_line(proxy, f"/{tool}/x")
    assert (seen["x-forwarded-for"], seen["x-real-ip"]) == ("127.0.0.1", "127.0.0.1")
    for name in ("forwarded", "client-ip", "true-client-ip", "x-client-ip", "cf-connecting-ip", "proxy"):
        assert name not in seen
    assert "203.0.113.9" not in str(seen)


def test_client_ip_forwarded_tools_get_the_address_and_no_other_tool_does(
    own_lab: Callable[..., Proxy],
) -> None:
    proxy = own_lab(client_ip_forwarded_tools=["listed"])
    for path in ("slow", "front"):
        listed = base.new_tool(proxy, "listed", "hello", path)
        seen = proxy.get(f"/{listed}/{path}", headers=base.FORGED_HEADERS).json()["headers"]
        assert f"path={path}" in base.access_log_line(proxy, f"/{listed}/{path}")
        assert (seen["x-forwarded-for"], seen["x-real-ip"]) == ("127.0.0.1", "127.0.0.1")
        assert "203.0.113.9" not in str(seen)
        other = base.new_tool(proxy, "unlisted", "hello", path)
        seen = proxy.get(f"/{other}/{path}", headers=base.FORGED_HEADERS).json()["headers"]
        assert f"path={path}" in base.access_log_line(proxy, f"/{other}/{path}")
        assert "x-forwarded-for" not in seen and "x-real-ip" not in seen


def test_path_mode_answers_only_its_own_domain(own_lab: Callable[..., Proxy]) -> None:
    """A forged Host (or an IP address) gets the catch-all server's page, never a tool."""
    proxy = own_lab(server_name="tools.test")
    assert proxy.get("/hello/", headers={"Host": "tools.test"}).json()["tool"] == "hello"
    for host in ("evil.example", "127.0.0.1", "hello.tools.test"):
        reply = proxy.get("/hello/", headers={"Host": host})
        assert reply.status == 404 and "Not found" in reply.body and '"tool"' not in reply.body
        healthz = proxy.get("/.well-known/healthz", headers={"Host": host})
        assert (healthz.status, healthz.body) == (200, "proxy ok!")  # what monitoring matches (C.5)
        assert proxy.get("/hello/", headers={"Host": host}, kind="http").status == 404
    assert proxy.get("/hello/", headers={"Host": "tools.test"}, kind="http").status == 301
    assert hosts_seen(proxy, "hello") == ["tools.test"]
    # What nginx refuses before any tool is chosen is branded on the catch-all server too (C.5).
    refused = [
        ("GET /" + "a" * 9000 + " HTTP/1.1\r\nHost: evil.example\r\n\r\n", 414, "Address too long"),
        (
            "GET /x HTTP/1.1\r\nHost: evil.example\r\nCookie: " + "a" * 9000 + "\r\n\r\n",
            400,
            "Request header too large",
        ),
    ]
    for kind in ("https", "http"):
        for request_text, status, title in refused:
            reply = compat.raw(proxy, request_text.encode(), kind)
            assert compat.branded(reply, status, title) and "nginx/" not in reply.body, (kind, reply)


def test_host_mode_never_selects_a_tool_for_an_ip_address(
    own_lab: Callable[..., Proxy], started: Callable[..., Process]
) -> None:
    """Routes for all-digit names (written by an older writer; the store refuses them) never serve."""
    proxy = own_lab(routing="host")
    echo = base.backend(proxy, "echo").url
    raw = redis.Redis.from_url(proxy.info["redis"])
    for name in ("127", "10"):
        raw.hset(prefix_key(name), ".*", echo)
    for host in ("127.0.0.1", "10.0.0.5", "10.tools.test", "[::1]"):
        assert proxy.get("/", headers={"Host": host}).status == 503
    assert proxy.get("/", headers={"Host": "echo.tools.test"}).json()["tool"] == "echo"
    assert hosts_seen(proxy, "echo") == ["echo.tools.test"]
    # One origin per tool: its service worker may claim its own origin's `/`.
    sample = started("sw-own-origin", headers=("Service-Worker-Allowed: /",))
    base.store(proxy).set_route("sw", ".*", validate.backend(f"http://127.0.0.1:{sample.port}"), ACTOR)
    assert proxy.get("/", headers={"Host": "sw.tools.test"}).headers["service-worker-allowed"] == "/"


def test_host_mode_gives_a_tool_only_its_own_name_under_the_domain(own_lab: Callable[..., Proxy]) -> None:
    """nginx's `*.tools.test` matches `echo.hello.tools.test` too: a subdomain of hello's site, which
    gets hello's Domain cookies. Its first label must not make it echo's."""
    proxy = own_lab(routing="host", server_name="*.tools.test")
    assert proxy.get("/", headers={"Host": "echo.tools.test"}).json()["tool"] == "echo"
    assert proxy.get("/", headers={"Host": "Echo.Tools.Test"}).json()["tool"] == "echo"
    cookie = "session=hello-domain-only"
    for host in ("echo.hello.tools.test", "echo.x.tools.test", "echo.tools.test.tools.test"):
        reply = proxy.get("/deeper", headers={"Host": host, "Cookie": cookie})
        assert reply.status == 503 and "Tool unavailable" in reply.body, host
    assert proxy.get("/", headers={"Host": "evil.example"}).status == 404
    assert cookie not in lab_tool_log(proxy, "echo").read_text(encoding="utf-8")
    assert cookie not in lab_tool_log(proxy, "hello").read_text(encoding="utf-8")


def test_a_tool_that_relays_to_the_proxy_ends_after_one_pass_with_508(
    lab: Proxy, started: Callable[..., Process], tmp_path: Path
) -> None:
    """A backend that sends every request back to the proxy: one pass, then 508, not a storm."""
    relay = started("relay", relay=f"https://127.0.0.1:{lab.port('https')}")
    route_to(lab, "loop", relay, "front")
    reply = lab.get("/loop/x")
    assert reply.status == 508 and "Loop detected" in reply.body
    relayed = [seen for seen in requests_seen(tmp_path / "relay.log") if seen["uri"] == "/loop/x"]
    assert len(relayed) == 1
    assert relayed[0]["headers"][HOP_HEADER.lower()] == fleet.PROXY_NAME


@pytest.mark.parametrize("path", ["slow", "front"])
def test_a_tools_x_accel_redirect_is_not_followed(
    lab: Proxy, started: Callable[..., Process], path: str
) -> None:
    """nginx would follow it to any location: the WebSockets' (an hour's timeout for a plain request),
    a branded page answered 200, or the tool's own prefix again (an internal redirect loop, 500)."""
    for n, target in enumerate(("@urlproxy_websocket", "/.error/504.html", f"/accel-{path}-2/again")):
        tool = f"accel-{path}-{n}"
        sample = started(tool, headers=(f"X-Accel-Redirect: {target}", "X-Sample: kept"))
        route_to(lab, tool, sample, path)
        reply = lab.get(f"/{tool}/page")
        assert f"path={path}" in base.access_log_line(lab, f"/{tool}/page")
        assert (reply.status, reply.json()["tool"], reply.json()["uri"]) == (200, tool, f"/{tool}/page")
        assert reply.headers["x-sample"] == "kept" and "x-accel-redirect" not in reply.headers


def test_a_client_sending_the_hop_marker_stops_only_its_own_request(lab: Proxy) -> None:
    assert lab.get("/hello/", headers={HOP_HEADER: fleet.PROXY_NAME}).status == 508
    # In any case, and whatever Upgrade comes with it: no header hides a loop.
    assert lab.get("/hello/", headers={HOP_HEADER: fleet.PROXY_NAME.upper()}).status == 508
    for upgrade in ("h2c", "websocket|x", "a|b"):
        assert lab.get("/hello/", headers={HOP_HEADER: fleet.PROXY_NAME, "Upgrade": upgrade}).status == 508
    # As one item of a list (a relay that folds or extends the header, as HTTP lets it), or padded.
    name = fleet.PROXY_NAME
    listed = (f"{name}, relay", f"relay, {name}", f"relay,{name}", f"{name};x", f"relay;{name}", f'"{name}"')
    listed += (f"{name}:443", f"{name}/relay", f"{name}=1")
    for marker in (*listed, f"\t{name}", f"{name}\t"):
        assert lab.get("/hello/", headers={HOP_HEADER: marker}).status == 508, marker
    for other in ("some-other-proxy", f"{name}x", f"x{name}", f"{name}-2, relay", f"{name}.other"):
        assert lab.get("/hello/", headers={HOP_HEADER: other}).json()["tool"] == "hello", other
    assert lab.backend_of("/hello/") == "hello"
