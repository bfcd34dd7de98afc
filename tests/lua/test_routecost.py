"""What one tool's routes may cost the proxy, on the real nginx + Redis (docs/security.md, B.1, B.2).

Time is never compared with a fixed number: CPU time the nginx worker spent (from the kernel's
schedstat, in nanoseconds, which other processes on a loaded machine do not inflate) is compared
between two cases in the same run, and a victim tool's latency under attack is compared with its
latency under the same amount of harmless traffic, measured in interleaved rounds.
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import wait_until
from tests.lua.proxyclient import Proxy, error_log
from tests.lua.test_urlproxy import ACTOR, backend, store

# What nginx's PCRE does without lua_regex_match_limit: its built-in limit of 10,000,000 steps.
PCRE_DEFAULT_LIMIT = 10_000_000
# The red team's route: nested quantifiers, exponential backtracking on a path that almost matches.
CATASTROPHIC = "^/(a+)+$"
ALMOST = "/" + "a" * 40 + "!"
# The same answer (no route matches: 503) through the same code, with a regex that gives up at once.
HARMLESS = "^/a+$"
# How much a victim tool's median latency may grow under attack over the same traffic made harmless.
# Without the fixes these attacks grew it 50-70 times here (3.7 -> 250 ms for the regex); with them the
# attack's requests cost the worker at most ~4 times a harmless one (two capped matches), which
# bounds the growth even when the machine is loaded (seen: up to 4x with two busy loops beside).
SLOWDOWN_BOUND = 10


class Client:
    """One keep-alive HTTPS connection to the proxy, so TLS handshakes do not drown what is measured."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPSConnection:
        port = self.proxy.port("https")
        return http.client.HTTPSConnection("127.0.0.1", port, context=self.proxy.tls(), timeout=30)

    def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        """The status of GET `path` (reconnecting once if nginx closed the idle connection)."""
        for attempt in (1, 2):
            try:
                self.conn.request("GET", path, headers=headers or {})
                response = self.conn.getresponse()
                response.read()
                return response.status
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = self._connect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def worker_cpu_ns(proxy: Proxy) -> int:
    """CPU time nginx's workers have used so far (the lab runs one), in nanoseconds."""
    master = next(p.pid for p in proxy.state.processes if p.role == "nginx")
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert workers, "nginx has no worker"
    return sum(int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) for pid in workers)


def cpu_per_request(
    proxy: Proxy, path: str, count: int, headers: dict[str, str] | None = None
) -> tuple[float, set[int]]:
    """The worker's CPU time per request of `path` (after one warm-up request), and the statuses."""
    client = Client(proxy)
    try:
        client.get(path, headers)  # builds the cache entry and compiles the regex
        before = worker_cpu_ns(proxy)
        statuses = {client.get(path, headers) for _ in range(count)}
        return (worker_cpu_ns(proxy) - before) / count, statuses
    finally:
        client.close()


def redis_cli(proxy: Proxy, *args: str) -> str:
    """Run the real redis-cli against the lab's Redis, as the original runbook writes routes."""
    port = proxy.info["redis"].rsplit(":", 1)[1].split("/")[0]
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", port, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and "ERR" not in done.stdout, done.stdout + done.stderr
    return done.stdout


@contextmanager
def hammered(proxy: Proxy, path: str, clients: int = 4) -> Iterator[list[int]]:
    """`clients` threads requesting `path` back to back until the block ends; yields their statuses."""
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        client = Client(proxy)
        try:
            while not stop.is_set():
                statuses.append(client.get(path))
        finally:
            client.close()

    threads = [threading.Thread(target=hammer) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(statuses) >= clients, f"{clients} requests of {path} answered")
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def victim_latencies(proxy: Proxy, count: int = 10) -> tuple[list[float], set[int]]:
    """Seconds per request of the lab's `hello` on one keep-alive connection, and the statuses."""
    client = Client(proxy)
    try:
        client.get("/hello/")
        times, statuses = [], set()
        for _ in range(count):
            start = time.monotonic()
            statuses.add(client.get("/hello/"))
            times.append(time.monotonic() - start)
        return times, statuses
    finally:
        client.close()


def victim_under(proxy: Proxy, baseline: str, attack: str, rounds: int = 3) -> tuple[float, float]:
    """`hello`'s median latency while `baseline` is hammered and while `attack` is, in alternating
    rounds (so a burst of load from elsewhere falls on both alike); every answer must be hello's."""
    seen: dict[str, list[float]] = {baseline: [], attack: []}
    for _ in range(rounds):
        for path, times in seen.items():
            with hammered(proxy, path) as statuses:
                latencies, answers = victim_latencies(proxy)
            assert answers == {200}, f"hello answered {answers} while {path} was hammered"
            assert set(statuses) == {statuses[0]}, f"{path} answered {set(statuses)}"
            times.extend(latencies)
    return statistics.median(seen[baseline]), statistics.median(seen[attack])


# B.1: regex cost ---------------------------------------------------------------------------------


def _with_catastrophic_route(proxy: Proxy) -> Proxy:
    routes = store(proxy)
    routes.set_route("evil", CATASTROPHIC, backend(proxy, "hello"), ACTOR)
    routes.set_route("plain", HARMLESS, backend(proxy, "hello"), ACTOR)
    proxy.caught_up()
    return proxy


def test_a_catastrophic_route_ends_in_an_error_at_a_fraction_of_pcres_default_cost(
    own_lab: Callable[..., Proxy],
) -> None:
    limited = _with_catastrophic_route(own_lab())
    unlimited = _with_catastrophic_route(own_lab(regex_match_limit=PCRE_DEFAULT_LIMIT))

    cheap, answers = cpu_per_request(limited, "/evil" + ALMOST, count=20)
    dear, unlimited_answers = cpu_per_request(unlimited, "/evil" + ALMOST, count=20)

    assert answers == unlimited_answers == {503}, "no route matches either way"
    print(f"worker CPU per request: {cheap / 1e6:.2f} ms limited, {dear / 1e6:.2f} ms at PCRE's default")
    assert cheap * 10 < dear
    # "pcre_exec() failed: -8" with PCRE 8 (Debian 12's module), "pcre2_match() failed: -47" with PCRE2.
    said = f"route {CATASTROPHIC} of tool evil skipped: pcre"
    assert said in error_log(limited), "the skipped route is logged"


def test_a_tool_hammered_on_a_catastrophic_route_does_not_stall_another_tool(
    own_lab: Callable[..., Proxy],
) -> None:
    proxy = _with_catastrophic_route(own_lab())
    harmless, attacked = victim_under(proxy, "/plain" + ALMOST, "/evil" + ALMOST)
    print(f"hello's median: {harmless * 1e3:.1f} ms under harmless load, {attacked * 1e3:.1f} ms attacked")
    assert attacked < SLOWDOWN_BOUND * harmless


def test_a_route_pcre_cannot_compile_written_by_redis_cli_is_logged(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab()
    hello, echo = backend(proxy, "hello").url, backend(proxy, "echo").url
    redis_cli(proxy, "HSET", "prefix:badre", "\\u0041", hello, ".*", echo)

    assert proxy.backend_of("/badre/A") == "echo", "the route that compiles still serves"
    said = "ignoring a stored route: route \\u0041 of tool badre does not compile: pcre"
    wait_until(lambda: said in error_log(proxy), "the refused route in nginx's error log")


def test_pcre_syntax_python_does_not_know_is_stored_and_matched(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab()
    store(proxy).set_route("pcre", "^/\\x{41}$", backend(proxy, "echo"), ACTOR)
    proxy.caught_up()
    assert proxy.backend_of("/pcre/A") == "echo"
    assert proxy.get("/pcre/B").status == 503


# B.2: route count --------------------------------------------------------------------------------


def test_a_tool_with_5000_routes_from_redis_cli_is_capped_and_costs_what_any_tool_costs(
    own_lab: Callable[..., Proxy],
) -> None:
    proxy = own_lab()
    echo = backend(proxy, "echo").url  # the same backend as the baseline's: only nginx's work differs
    pairs = [item for number in range(5000) for item in (f"^/r{number:04d}$", echo)]
    redis_cli(proxy, "HSET", "prefix:big", *pairs)

    assert proxy.backend_of("/big/r0003") == "echo", "one of the first 16 in match order"
    assert proxy.get("/big/r4999").status == 503, "past the cap: not routed"
    said = "tool big has 5000 routes, more than max_routes_per_tool: routing by the first 16"
    wait_until(lambda: said in error_log(proxy), "the cap in nginx's error log")

    # The 16th route: every request tries all the routes the tool is allowed. Without the cap each
    # request re-read, parsed and sorted the 5,000 routes (and failed with a 500): 100-1000 times this.
    big, big_answers = cpu_per_request(proxy, "/big/r0015", count=200)
    small, small_answers = cpu_per_request(proxy, "/echo/r0015", count=200)
    assert big_answers == small_answers == {200}
    print(f"worker CPU per request: {big / 1e3:.0f} us for big, {small / 1e3:.0f} us for echo")
    assert big < 5 * small

    small_load, big_load = victim_under(proxy, "/echo/r0015", "/big/r0015")
    print(f"hello's median: {small_load * 1e3:.1f} ms with echo hammered, {big_load * 1e3:.1f} ms with big")
    assert big_load < SLOWDOWN_BOUND * small_load
