"""/metrics on the internal port of a real nginx: what requests, errors and Redis trouble add up to.

Every exposition is read with prometheus_client's own parser, so what a Prometheus server would
scrape is what is checked. Counters are flushed by each worker about once a second: tests wait
for the counts they expect, never for a fixed time.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_until
from tests.lua.proxyclient import Proxy, lab_redis
from tests.lua.test_urlproxy import ACTOR, store
from toolforgectl.adapters.processes import free_port
from toolforgectl.adapters.render import HOP_HEADER
from toolforgectl.core import validate
from toolforgectl.lab import fleet

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(proxy: Proxy) -> Samples:
    """Every sample of /metrics, by (sample name, labels)."""
    reply = proxy.get("/metrics", kind="internal")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.body)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_found_tool() -> Iterator[str]:
    """A backend that answers 404 to everything: a tool's own error, not the proxy's."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def wait_for(proxy: Proxy, what: str, moved: Callable[[Samples], bool]) -> Samples:
    """The first scrape where `moved` holds (workers flush about once a second)."""
    found: list[Samples] = []

    def check() -> bool:
        found[:] = [scrape(proxy)]
        return moved(found[0])

    wait_until(check, what)
    return found[0]


def test_requests_count_by_class_per_tool_and_upstream_errors(lab: Proxy, not_found_tool: str) -> None:
    routes = store(lab)
    routes.set_route("gone", ".*", validate.backend(not_found_tool), ACTOR)
    routes.set_route("deadend", ".*", validate.backend(f"http://127.0.0.1:{free_port()}"), ACTOR)
    lab.caught_up()
    before = scrape(lab)
    statuses = [lab.get(path).status for path in ["/hello/", "/hello/", "/hello/", "/gone/", "/gone/x"]]
    statuses += [lab.get(path).status for path in ["/deadend/", "/deadend/", "/no-such-tool/"]]
    assert statuses == [200, 200, 200, 404, 404, 502, 502, 503]

    def delta(samples: Samples, name: str, **labels: str) -> float:
        return sample(samples, name, **labels) - sample(before, name, **labels)

    expected = {
        ("urlproxy_requests_total", "2xx"): 3,
        ("urlproxy_requests_total", "4xx"): 2,
        ("urlproxy_requests_total", "5xx"): 3,
    }
    after = wait_for(
        lab,
        f"the counters to move by {expected}",
        lambda s: all(delta(s, name, **{"class": c}) == n for (name, c), n in expected.items()),
    )
    tool = "urlproxy_tool_requests_total"
    assert delta(after, tool, tool="hello", **{"class": "2xx"}) == 3
    assert delta(after, tool, tool="gone", **{"class": "4xx"}) == 2
    assert delta(after, tool, tool="deadend", **{"class": "5xx"}) == 2
    assert not any(labels for (name, labels) in after if ("tool", "no-such-tool") in labels)
    assert delta(after, "urlproxy_upstream_errors_total", kind="error") == 2
    assert delta(after, "urlproxy_upstream_errors_total", kind="timeout") == 0
    # After the writes, each tool's first request took the slow path (a miss), the next ones the front.
    assert delta(after, "urlproxy_routing_total", path="fast") >= 3
    assert delta(after, "urlproxy_routing_total", path="slow") >= 4
    assert delta(after, "urlproxy_route_cache_total", result="miss") >= 4
    assert delta(after, "urlproxy_route_cache_total", result="hit") >= 3
    assert sample(after, "urlproxy_redis_up") == 1
    # The watcher hears from Redis at least every watcher_ping_ms (1 s: a PING's answer) while it answers.
    assert 0 <= sample(after, "urlproxy_watcher_lag_seconds") < 3


def _held_backend() -> tuple[ThreadingHTTPServer, threading.Semaphore, threading.Event]:
    """A backend answering 200 at once and, for a path with "held", 404 once `release` is set; each
    held request releases `arrived` when it gets there. Its own state per test: a rerun in the same
    process must hold its requests again."""
    arrived, release = threading.Semaphore(0), threading.Event()

    class Held(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200
            if "held" in self.path:
                arrived.release()
                release.wait(timeout=30)
                status = 404
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Held), arrived, release


def test_requests_in_flight_at_once_count_for_their_own_tool(lab: Proxy) -> None:
    """The log phase takes each request's tool from what the balancer decided for that request: four
    requests of one tool wait at their backend while another tool's requests come and go."""
    server, arrived, release = _held_backend()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store(lab).set_route(
            "waits", ".*", validate.backend(f"http://127.0.0.1:{server.server_address[1]}"), ACTOR
        )
        lab.caught_up()
        assert lab.get("/waits/").status == 200  # read into the cache: the next ones take the front's path
        before = scrape(lab)
        held: list[int] = []
        clients = [
            threading.Thread(target=lambda: held.append(lab.get("/waits/held").status)) for _ in range(4)
        ]
        for client in clients:
            client.start()
        for _ in clients:
            assert arrived.acquire(timeout=20), "a held request never reached its backend"
        assert [lab.get("/hello/").status for _ in range(6)] == [200] * 6
        release.set()
        for client in clients:
            client.join(timeout=20)
        assert held == [404] * 4
    finally:
        release.set()
        server.shutdown()
        server.server_close()

    def delta(samples: Samples, tool: str, class_: str) -> float:
        labels = {"tool": tool, "class": class_}
        return sample(samples, "urlproxy_tool_requests_total", **labels) - sample(
            before, "urlproxy_tool_requests_total", **labels
        )

    after = wait_for(
        lab, "4 404s of waits", lambda s: delta(s, "waits", "4xx") == 4 and delta(s, "hello", "2xx") == 6
    )
    assert delta(after, "waits", "2xx") == 0
    assert delta(after, "hello", "4xx") == 0


def test_metrics_are_on_the_internal_port_only(lab: Proxy) -> None:
    assert scrape(lab), "the internal port serves them"
    public = lab.get("/metrics")  # on the public port, "metrics" is just a tool name nobody has
    assert public.status == 503 and "urlproxy_" not in public.body
    assert lab.get("/metrics", kind="http").status == 301  # plain http only redirects to https
    assert "urlproxy_" not in lab.get("/metrics", headers={"Host": "metrics"}).body


def test_a_backend_that_never_answers_counts_as_a_timeout(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab(read_timeout=1)  # plain requests' read timeout (WebSockets keep theirs)
    hello = proxy.state.tools["hello"]["backend"]
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (the kernel does), never answers
        routes = store(proxy)
        routes.set_route("silent", "^/ok", validate.backend(hello), ACTOR)
        routes.set_route(
            "silent", ".*", validate.backend(f"http://127.0.0.1:{silent.getsockname()[1]}"), ACTOR
        )
        proxy.caught_up()
        assert proxy.get("/silent/ok").status == 200  # the slow path caches silent's routes
        assert proxy.get("/silent/x").status == 504  # the front routes it, and times out
        # Not cached yet: the slow path times out first (the front's hop waits longer) and answers
        # the 504, which the front passes on: counted once, by the slow path.
        routes.set_route("mute", ".*", validate.backend(f"http://127.0.0.1:{silent.getsockname()[1]}"), ACTOR)
        assert proxy.get("/mute/").status == 504
    after = wait_for(
        proxy, "two timeouts", lambda s: sample(s, "urlproxy_upstream_errors_total", kind="timeout") == 2
    )
    assert sample(after, "urlproxy_tool_requests_total", tool="silent", **{"class": "5xx"}) == 1
    assert sample(after, "urlproxy_tool_requests_total", tool="mute", **{"class": "5xx"}) == 1
    assert sample(after, "urlproxy_requests_total", **{"class": "5xx"}) == 2
    assert sample(after, "urlproxy_tool_requests_total", tool="silent", **{"class": "2xx"}) == 1
    assert sample(after, "urlproxy_upstream_errors_total", kind="error") == 0


def test_redis_down_shows_as_down_and_the_watcher_lag_grows(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab()
    wait_for(proxy, "the watcher to reach Redis", lambda s: sample(s, "urlproxy_watcher_lag_seconds") < 5)
    lab_redis(proxy).stop()
    down = wait_for(proxy, "Redis to show as down", lambda s: sample(s, "urlproxy_redis_up") == 0)
    lag = sample(down, "urlproxy_watcher_lag_seconds")
    wait_for(proxy, "the lag to grow", lambda s: sample(s, "urlproxy_watcher_lag_seconds") > lag + 0.5)
    assert proxy.get("/hello/").status in (200, 503)  # still answering


def raw_status(proxy: Proxy, request: bytes) -> int:
    """The status nginx answers to `request` sent as is over TLS (what http.client would not send)."""
    raw = socket.create_connection(("127.0.0.1", proxy.port("https")), timeout=10)
    with proxy.tls().wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(1024)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


def test_the_proxys_own_refusals_count_like_every_answer(own_lab: Callable[..., Proxy]) -> None:
    """The hop marker's 508, the catch-all server's 404 and nginx's own 400 show in the totals."""
    proxy = own_lab(server_name="tools.test")
    before = scrape(proxy)
    loop = proxy.get("/hello/", headers={"Host": "tools.test", HOP_HEADER: fleet.PROXY_NAME})
    assert loop.status == 508
    assert proxy.get("/hello/", headers={"Host": "evil.example"}).status == 404
    assert raw_status(proxy, b"GET /hello/ HTTP/1.1\r\nConnection: close\r\n\r\n") == 400  # no Host

    def delta(samples: Samples, status_class: str) -> float:
        labels = {"class": status_class}
        name = "urlproxy_requests_total"
        return sample(samples, name, **labels) - sample(before, name, **labels)

    after = wait_for(proxy, "a 508 and two 4xx", lambda s: delta(s, "5xx") == 1 and delta(s, "4xx") == 2)
    assert delta(after, "2xx") == 0
    # None of them reached a tool, so no tool's series moved.
    assert not any(name == "urlproxy_tool_requests_total" and value for (name, _), value in after.items())


def test_metrics_off_serves_no_metrics_and_still_routes(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab(metrics=False)
    assert proxy.get("/metrics", kind="internal").status == 404
    assert proxy.backend_of("/hello/") == "hello"


def test_tools_past_metrics_tools_share_one_label_and_counts_add_up_over_flushes(
    own_lab: Callable[..., Proxy], not_found_tool: str
) -> None:
    """At most `metrics_tools` tools get series of their own; every request counts, flush after flush."""
    proxy = own_lab(metrics_tools=2)
    routes = store(proxy)
    tools = ["alpha", "bravo", "charlie", "delta"]
    for tool in tools:
        routes.set_route(tool, ".*", validate.backend(not_found_tool), ACTOR)
    proxy.caught_up()
    name = "urlproxy_tool_requests_total"

    def per_tool(samples: Samples) -> dict[str, float]:
        return {
            dict(labels)["tool"]: value
            for (sample_name, labels), value in samples.items()
            if sample_name == name and ("class", "4xx") in labels
        }

    for sent in (1, 2):  # the second round's counts add to the first's, flushed before: none is lost
        for tool in tools:
            assert proxy.get(f"/{tool}/").status == 404
        total = sent * len(tools)
        after = wait_for(proxy, f"{total} tool requests", lambda s, n=total: sum(per_tool(s).values()) == n)
        counted = per_tool(after)
        own = sorted(label for label in counted if label != "_other")
        assert len(own) == 2 and set(own) <= set(tools)
        assert all(counted[label] == sent for label in own)
        assert counted["_other"] == 2 * sent
        assert sample(after, "urlproxy_tools_labelled") == 2
