"""The data plane as users meet it: real nginx + urlproxy.lua + Redis + sample tools, all on loopback."""

from __future__ import annotations

import itertools
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.conftest import wait_until
from tests.lua.proxyclient import (
    Proxy,
    access_log_line,
    lab_redis,
    restart_redis,
    until,
    ws_receive_text,
    ws_send_text,
)
from toolforgectl.adapters.processes import Process, free_port, spawn
from toolforgectl.adapters.routestore import RouteStore, prefix_key
from toolforgectl.core import config, validate
from toolforgectl.core.destinations import Destinations
from toolforgectl.core.models import Attribution, Backend
from toolforgectl.lab import fleet, sampletool

ACTOR = Attribution("test")


def sample_tool(
    name: str, log: Path, host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None
) -> Process:
    """A sample tool of our own (not registered by the lab), on `port` or a free one; https with `tls`."""
    port = port or free_port(host)
    return spawn(f"{name} tool", sampletool.command(name, host, port, tls), log, host, port)


def store(proxy: Proxy) -> RouteStore:
    """The lab's route store, under the lab fleet's destination rule (its tools run on loopback)."""
    fleet_config = config.load(Path(proxy.state.config))
    return RouteStore.from_url(proxy.info["redis"], destinations=Destinations.of_fleet(fleet_config))


def backend(proxy: Proxy, tool: str) -> Backend:
    return validate.backend(proxy.state.tools[tool]["backend"])


def test_tool_prefix_reaches_its_backend(lab: Proxy) -> None:
    assert lab.backend_of("/hello/") == "hello"
    assert lab.backend_of("/echo/some/page") == "echo"


def test_https_backend_is_reached_over_tls(lab: Proxy, tmp_path: Path) -> None:
    pair = (lab.info["certificate"], lab.info["certificate"].replace(".crt", ".key"))
    tool = sample_tool("secure", tmp_path / "tls-tool.log", tls=pair)
    try:
        store(lab).set_route("secure", ".*", validate.backend(f"https://127.0.0.1:{tool.port}"), ACTOR)
        until(lambda: lab.backend_of("/secure/x?y=1") == "secure", timeout=5)
        assert lab.get("/secure/x?y=1").json()["uri"] == "/secure/x?y=1"
    finally:
        tool.stop()


def test_ipv6_loopback_backend_is_reached(lab: Proxy, tmp_path: Path) -> None:
    try:
        port = free_port("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    tool = sample_tool("six", tmp_path / "ipv6-tool.log", "::1", port)
    try:
        store(lab).set_route("six", ".*", validate.backend(f"http://[::1]:{port}"), ACTOR)
        until(lambda: lab.backend_of("/six/") == "six", timeout=5)
    finally:
        tool.stop()


def test_uri_reaches_the_tool_unchanged(lab: Proxy) -> None:
    reply = lab.get("/hello/a/b%20c/?x=1&y=%2F")
    assert reply.json()["uri"] == "/hello/a/b%20c/?x=1&y=%2F"


def test_tool_without_trailing_slash_is_matched_against_slash(lab: Proxy) -> None:
    store(lab).set_route("bare", "^/$", backend(lab, "echo"), ACTOR)
    until(lambda: lab.backend_of("/bare") == "echo", timeout=5)
    assert lab.get("/bare/more").status == 503


def test_regex_routes_are_tried_longest_first(lab: Proxy) -> None:
    routes = store(lab)
    routes.set_route("multi", ".*", backend(lab, "hello"), ACTOR)
    routes.set_route("multi", "^/api/", backend(lab, "echo"), ACTOR)
    until(lambda: lab.backend_of("/multi/api/v1") == "echo", timeout=5)
    assert lab.backend_of("/multi/index.html") == "hello"
    assert lab.get("/multi/api/v1?q=1").json()["uri"] == "/multi/api/v1?q=1"


def test_unknown_tool_falls_back_to_admin_with_the_full_uri(lab: Proxy) -> None:
    routes = store(lab)
    routes.set_route("admin", ".*", backend(lab, "echo"), ACTOR)
    try:
        until(lambda: lab.backend_of("/no-such-tool/x") == "echo", timeout=5)
        assert lab.get("/no-such-tool/x?y").json()["uri"] == "/no-such-tool/x?y"
        assert lab.backend_of("/hello/") == "hello"
    finally:
        routes.delete_tool("admin", ACTOR)
    until(lambda: lab.get("/no-such-tool/x").status == 503, timeout=5)


def test_a_broken_key_only_breaks_its_own_tool(lab: Proxy) -> None:
    redis.Redis.from_url(lab.info["redis"]).set(prefix_key("wrongtype"), "not a hash")
    assert lab.get("/wrongtype/").status == 503
    assert lab.backend_of("/hello/") == "hello"
    # A tool never seen before is read from Redis at once: the error did not mark Redis down.
    store(lab).set_route("after-wrongtype", ".*", backend(lab, "hello"), ACTOR)
    assert lab.backend_of("/after-wrongtype/") == "hello"


def test_unknown_tool_gets_a_branded_503_without_nginx_version(lab: Proxy) -> None:
    reply = lab.get("/does-not-exist/")
    assert reply.status == 503
    assert "Toolforge" in reply.body and "Tool unavailable" in reply.body
    assert "nginx/" not in reply.body and reply.headers.get("server") == "nginx"


def test_unreachable_backend_gets_a_branded_502(lab: Proxy) -> None:
    store(lab).set_route("stopped", ".*", validate.backend(f"http://127.0.0.1:{free_port()}"), ACTOR)
    reply = lab.get("/stopped/")
    assert reply.status == 502
    assert "Tool unreachable" in reply.body and "nginx/" not in reply.body


def test_plain_http_redirects_to_https_with_301(lab: Proxy) -> None:
    reply = lab.get("/hello/page?x=1", kind="http")
    assert reply.status == 301
    assert reply.headers["location"] == f"https://127.0.0.1:{lab.port('https')}/hello/page?x=1"


def test_https_answers_carry_hsts(lab: Proxy) -> None:
    assert lab.get("/hello/").headers["strict-transport-security"] == "max-age=31622400"
    assert "strict-transport-security" in lab.get("/does-not-exist/").headers


def new_tool(proxy: Proxy, name: str, target: str, path: str) -> str:
    """Route the new tool `name` to sample tool `target`; its next request takes `path`.

    Nothing has cached a new tool, so its first request takes the slow path. Once nginx routes by
    the version of this write, what that request caches stays fresh, so the front routes the next.
    """
    store(proxy).set_route(name, ".*", backend(proxy, target), ACTOR)
    proxy.caught_up()
    if path == "front":
        proxy.get(f"/{name}/warm")
    return name


# What a client may send to pass itself off as someone else (or to reach a tool's CGI environment).
FORGED_HEADERS = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Real-IP": "203.0.113.9",
    "Forwarded": "for=203.0.113.9",
    "Client-IP": "203.0.113.9",
    "True-Client-IP": "203.0.113.9",
    "X-Client-IP": "203.0.113.9",
    "X-Cluster-Client-IP": "203.0.113.9",
    "CF-Connecting-IP": "203.0.113.9",
    "Fastly-Client-IP": "203.0.113.9",
    "Proxy": "http://evil.example",
    "X-Forwarded-Proto": "gopher",
    "X-Forwarded-Host": "evil.example",
    "X-Original-URI": "/elsewhere",
}


@pytest.mark.parametrize("path", ["slow", "front"])
def test_forwarding_headers_come_from_the_proxy_and_hide_the_client(lab: Proxy, path: str) -> None:
    """client_ip: hidden (the default): no address at all reaches the tool, least of all a forged one."""
    tool = new_tool(lab, f"headers-{path}", "hello", path)
    seen = lab.get(f"/{tool}/where?a=b", headers=FORGED_HEADERS).json()["headers"]
    assert f"path={path}" in access_log_line(lab, f"/{tool}/where?a=b")
    # Every client-address header of FORGED_HEADERS: none reaches the tool in this mode.
    hidden = ("x-forwarded-for", "x-real-ip", "forwarded", "client-ip", "true-client-ip", "x-client-ip")
    for name in (*hidden, "x-cluster-client-ip", "cf-connecting-ip", "fastly-client-ip"):
        assert name not in seen
    assert "203.0.113.9" not in str(seen)
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == "127.0.0.1"
    assert seen["x-forwarded-port"] == str(lab.port("https"))
    assert seen["x-original-uri"] == f"/{tool}/where?a=b"
    assert seen["host"] == "127.0.0.1"
    assert "proxy" not in seen


@pytest.mark.parametrize("path", ["slow", "front"])
def test_websocket_upgrade_goes_through_to_the_tool(lab: Proxy, path: str) -> None:
    tool = new_tool(lab, f"socket-{path}", "echo", path)
    with lab.websocket(f"/{tool}/socket") as (sock, status):
        assert status == "HTTP/1.1 101 Switching Protocols"
        ws_send_text(sock, "ping through the proxy")
        assert ws_receive_text(sock) == "ping through the proxy"


def test_list_names_every_tool_with_a_route_and_nothing_else(lab: Proxy) -> None:
    listed = lab.get("/list", kind="internal")
    assert listed.headers["content-type"] == "application/json"
    data = listed.json()
    assert data["hello"] == {"status": "active"} and data["echo"] == {"status": "active"}
    assert "127.0.0.1" not in listed.body
    store(lab).set_route("newly-listed", ".*", backend(lab, "hello"), ACTOR)
    until(lambda: "newly-listed" in lab.get("/list", kind="internal").json(), timeout=5)


def test_route_version_on_the_internal_port_follows_writes(lab: Proxy) -> None:
    routes = store(lab)
    routes.set_route("versioned", ".*", backend(lab, "hello"), ACTOR)
    written = routes.version()
    until(lambda: lab.route_version() == written, timeout=5)
    assert lab.get("/route-version").status == 503  # on the public port it is just an unknown tool


def test_internal_port_has_nothing_else(lab: Proxy) -> None:
    assert lab.get("/hello/", kind="internal").status == 404


def test_healthz_answers_locally_with_the_body_monitoring_matches(lab: Proxy) -> None:
    for kind in ("https", "http", "internal"):
        reply = lab.get("/.well-known/healthz", kind=kind)
        assert (reply.status, reply.body) == (200, "proxy ok!")  # the original's, byte for byte


def test_access_log_names_tool_and_backend(lab: Proxy) -> None:
    address = backend(lab, "hello").url.removeprefix("http://")
    lab.caught_up()  # earlier tests wrote routes: what the next request caches must stay fresh
    lab.get("/hello/warm")  # the cache knows hello from here on
    lab.get("/hello/logged")
    line = access_log_line(lab, "/hello/logged")
    assert line.startswith("127.0.0.1 ")
    assert f"tool=hello backend={address} path=front" in line


def test_only_nginx_can_reach_the_slow_path_socket(lab: Proxy) -> None:
    run = Path(lab.state.dir) / fleet.PROXY_NAME / "run"
    assert (run / "slow.sock").is_socket()
    assert run.stat().st_mode & 0o777 == 0o700


def test_slow_path_logs_once_with_the_client_address(lab: Proxy) -> None:
    new_tool(lab, "newly-logged", "hello", "slow")
    assert lab.get("/newly-logged/first").status == 200
    line = access_log_line(lab, "/newly-logged/first")
    assert line.startswith("127.0.0.1 ")  # the client, not the front's socket
    assert f"tool=newly-logged backend={backend(lab, 'hello').url.removeprefix('http://')} path=slow" in line
    lab.get("/newly-logged/second")
    assert "path=front" in access_log_line(lab, "/newly-logged/second")


def test_route_change_is_live_at_once(lab: Proxy) -> None:
    routes = store(lab)
    routes.set_route("moving", ".*", backend(lab, "hello"), ACTOR)
    lab.caught_up()  # so the next request caches the entry under the current version
    assert lab.backend_of("/moving/") == "hello"
    routes.set_route("moving", ".*", backend(lab, "echo"), ACTOR)
    # Polls as fast as it can; the cache TTL is 60 s, so only invalidation can pass this.
    took = until(lambda: lab.backend_of("/moving/") == "echo", timeout=1)
    print(f"route change visible after {took * 1000:.0f} ms")


def test_default_backend_serves_unknown_tools(own_lab: Callable[..., Proxy], tmp_path: Path) -> None:
    default = sample_tool("default", tmp_path / "default.log")
    try:
        proxy = own_lab(default_backend=f"http://127.0.0.1:{default.port}")
        assert proxy.backend_of("/not-a-tool/x") == "default"
        assert proxy.backend_of("/hello/") == "hello"
    finally:
        default.stop()


def test_rate_limit_answers_429(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab(rate_limit=2, rate_limit_burst=3)
    statuses = [proxy.get("/hello/").status for _ in range(15)]
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses
    limited = next(r for r in (proxy.get("/hello/") for _ in range(5)) if r.status == 429)
    assert "Too many requests" in limited.body


def test_maintenance_switch_shows_the_maintenance_page(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab(maintenance=True)
    reply = proxy.get("/hello/")
    assert reply.status == 503 and "Down for maintenance" in reply.body
    assert proxy.get("/.well-known/healthz").status == 200


def test_redis_killed_mid_traffic_keeps_known_routes_and_503s_unknown(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab()
    assert proxy.backend_of("/hello/") == "hello"  # cached now
    assert "hello" in proxy.get("/list", kind="internal").json()
    answers: list[str | None] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            answers.append(proxy.backend_of("/hello/"))

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        until(lambda: len(answers) >= 10, timeout=10)
        lab_redis(proxy).stop()
        seen = len(answers)
        until(lambda: len(answers) >= seen + 20, timeout=10)
    finally:
        stop.set()
        worker.join()
    assert set(answers) == {"hello"}
    unknown = proxy.get("/never-seen/")
    assert unknown.status == 503 and "Tool unavailable" in unknown.body
    listed = proxy.get("/list", kind="internal")
    assert "hello" in listed.json() and listed.headers["x-toolforgectl-stale"] == "true"


def test_redis_down_longer_than_cache_ttl_still_serves_known_routes(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab(cache_ttl=1)
    proxy.caught_up()
    assert proxy.backend_of("/hello/") == "hello"  # cached now
    lab_redis(proxy).stop()
    sent = itertools.count()

    def slow_path_served_it() -> bool:
        # Every answer is hello's; once the entry is past cache_ttl the front hands it over to the
        # slow path, which serves it stale since Redis is down.
        path = f"/hello/stale-{next(sent)}"
        assert proxy.backend_of(path) == "hello"
        return "path=slow" in access_log_line(proxy, path)

    wait_until(slow_path_served_it, "a request past cache_ttl to take the slow path", interval=0.1)


def test_redis_hung_keeps_known_routes(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab()
    assert proxy.backend_of("/hello/") == "hello"
    redis = lab_redis(proxy)
    os.kill(redis.pid, signal.SIGSTOP)  # hung, not down: connections hang until our short timeout
    try:
        for _ in range(10):
            assert proxy.backend_of("/hello/") == "hello"
        assert proxy.get("/never-seen/").status == 503
    finally:
        os.kill(redis.pid, signal.SIGCONT)


def test_redis_restart_brings_fresh_routes_back(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab()
    assert proxy.backend_of("/hello/") == "hello"
    redis = lab_redis(proxy)
    redis.stop()
    assert proxy.backend_of("/hello/") == "hello"
    restarted = restart_redis(proxy)
    try:
        store(proxy).set_route("hello", ".*", backend(proxy, "echo"), ACTOR)
        until(lambda: proxy.backend_of("/hello/") == "echo", timeout=10)
        assert store(proxy).routes("hello") == {".*": backend(proxy, "echo").url}
    finally:
        restarted.stop()


def test_host_mode_routes_by_the_left_most_host_label(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab(routing="host")
    reply = proxy.get("/any/path?q=1", headers={"Host": "echo.tools.example.org"})
    assert reply.json()["tool"] == "echo" and reply.json()["uri"] == "/any/path?q=1"
    assert proxy.get("/", headers={"Host": "hello.tools.example.org"}).json()["tool"] == "hello"
    assert proxy.get("/echo/", headers={"Host": "nobody.tools.example.org"}).status == 503
