"""Block lists end to end: `toolforgectl block` (a real process) and redis-cli against the lab's
Redis and nginx.

A block is live within one invalidation, without a reload; each test waits for that condition
(never for a fixed time), then checks the branded 403, that others are still served, and that
removing the entry serves the blocked client again.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult, run_cli, wait_until
from tests.lua.proxyclient import Proxy, access_log_line, error_log
from tests.lua.test_freshness import LIVE_WITHIN, redis_cli, route_state, served_on_the_front
from tests.lua.test_routecost import cpu_per_request
from toolforgectl.adapters.routestore import block_key

GOOD = {"User-Agent": "Mozilla/5.0 (test)"}
UNIQUE = itertools.count()  # each request's path is unique, so its access log line can be found


def block(proxy: Proxy, *args: str) -> CliResult:
    result = run_cli("--redis", proxy.info["redis"], "block", *args)
    assert result.code == 0, result.stderr
    return result


def status(proxy: Proxy, path: str, headers: dict[str, str]) -> int:
    return proxy.get(path, headers=headers).status


def test_a_blocked_user_agent_gets_403_at_once_and_is_served_again_when_removed(lab: Proxy) -> None:
    evil = {"User-Agent": "EvilBot/2.0 (+https://evil.example)"}
    assert status(lab, "/hello/", evil) == 200
    block(lab, "add", "user-agent", "^EvilBot/", "--reason", "scraping", "--task-id", "T4242")
    wait_until(lambda: status(lab, "/hello/", evil) == 403, "the block to be live")
    refused = lab.get("/hello/", headers=evil)
    assert "Blocked user agent" in refused.body and "Toolforge" in refused.body
    assert "nginx/" not in refused.body
    # Others are served, from the front's cache too; the front still refuses the blocked client.
    assert status(lab, "/hello/warm", GOOD) == 200
    assert lab.get("/hello/fast", headers=GOOD).status == 200
    assert "path=front" in access_log_line(lab, "/hello/fast")
    assert status(lab, "/hello/again", evil) == 403, "hello is cached: this is the front's own check"
    block(lab, "remove", "user-agent", "^EvilBot/")
    wait_until(lambda: status(lab, "/hello/", evil) == 200, "the unblock to be live")


def test_a_blocked_network_gets_403_on_every_tool(lab: Proxy) -> None:
    block(lab, "add", "ip", "127.0.0.0/8", "--reason", "test client")
    try:
        wait_until(lambda: status(lab, "/hello/", GOOD) == 403, "the block to be live")
        refused = lab.get("/echo/x", headers=GOOD)
        assert refused.status == 403 and "Requests from your network are blocked" in refused.body
        assert lab.get("/list", kind="internal").status == 200, "the internal port is not a public one"
    finally:
        block(lab, "remove", "ip", "127.0.0.0/8")
    wait_until(lambda: status(lab, "/hello/", GOOD) == 200, "the unblock to be live")


def test_a_blocked_referer_gets_403(lab: Proxy) -> None:
    spam = {**GOOD, "Referer": "https://cheap-pills.example/offer"}
    block(lab, "add", "referer", r"cheap-pills\.example")
    try:
        wait_until(lambda: status(lab, "/hello/", spam) == 403, "the block to be live")
        assert "Blocked referer" in lab.get("/hello/", headers=spam).body
        assert status(lab, "/hello/", {**GOOD, "Referer": "https://example.org/"}) == 200
    finally:
        block(lab, "remove", "referer", r"cheap-pills\.example")


def test_a_dry_run_blocks_nothing(lab: Proxy) -> None:
    agent = {"User-Agent": "DryBot"}
    version = lab.caught_up()
    result = block(lab, "add", "user-agent", "DryBot", "--dry-run")
    assert result.stdout.startswith("would add:")
    assert lab.caught_up() == version, "nothing written: the route version did not move"
    assert status(lab, "/hello/", agent) == 200
    listed = run_cli("--redis", lab.info["redis"], "block", "list", "--kind", "user-agent")
    assert "DryBot" not in listed.stdout


def test_an_empty_user_agent_gets_403_when_enabled(own_lab: Callable[..., Proxy]) -> None:
    proxy = own_lab(block_empty_user_agent=True)
    assert status(proxy, "/hello/warm", GOOD) == 200
    assert status(proxy, "/hello/", GOOD) == 200  # from the front's cache
    missing = proxy.get("/hello/")  # http.client sends no User-Agent
    assert missing.status == 403 and "Requests must have a user agent" in missing.body
    assert status(proxy, "/hello/", {"User-Agent": ""}) == 403
    assert proxy.get("/.well-known/healthz").status == 200, "monitoring needs no User-Agent"


def test_requests_without_a_user_agent_are_served_by_default(lab: Proxy) -> None:
    assert lab.get("/hello/").status == 200


def nginx_processes(proxy: Proxy) -> set[int]:
    """The pids of nginx's master and workers: a reload would replace the workers."""
    master = next(p.pid for p in proxy.state.processes if p.role == "nginx")
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {master, *map(int, workers)}


def test_a_block_written_with_redis_cli_is_live_at_once_and_its_removal_too(lab: Proxy) -> None:
    # An operator following the original runbook's habits writes the key by hand: no version bump,
    # no audit; the watcher learns of it from Redis itself.
    served_on_the_front(lab, "hello")
    processes, epoch = nginx_processes(lab), route_state(lab)["epoch"]
    redis_cli(lab, "HSET", block_key("ip"), "127.0.0.0/8", "{}")
    try:
        wait_until(lambda: status(lab, "/hello/", GOOD) == 403, "the block to be live", timeout=LIVE_WITHIN)
        assert "Requests from your network are blocked" in lab.get("/echo/", headers=GOOD).body
    finally:
        redis_cli(lab, "HDEL", block_key("ip"), "127.0.0.0/8")
    wait_until(lambda: status(lab, "/hello/", GOOD) == 200, "the unblock to be live", timeout=LIVE_WITHIN)
    assert nginx_processes(lab) == processes, "nginx was reloaded or restarted"
    assert route_state(lab)["epoch"] == epoch, "a block list change made every tool's routes stale"
    # The lists were read again once; hello's routes stayed cached, so it is back on the front.
    path = f"/hello/after-{next(UNIQUE)}"
    wait_until(lambda: status(lab, path, GOOD) == 200 and "path=front" in access_log_line(lab, path), "front")


def test_costly_block_regexes_are_skipped_and_cost_requests_nothing_after_the_first(
    own_lab: Callable[..., Proxy],
) -> None:
    proxy = own_lab()
    # Stored around our CLI (which would take them: they compile), and matched against every
    # request of every tool. Four spellings of the red team's regex (B.1), none with a literal the
    # header lacks (PCRE would fail those at once), so a request that tried them all would pay four
    # capped matches: several times what a request costs.
    costly = [r"^(a+)+$", r"^(a|aa)+$", r"^(?:a+)+$", r"^(a+){1,}$"]
    for pattern in [*costly, "^EvilBot"]:
        redis_cli(proxy, "HSET", block_key("user-agent"), pattern, "{}")
    wait_until(lambda: status(proxy, "/hello/", {"User-Agent": "EvilBot"}) == 403, "the lists to be read")
    evil = {"User-Agent": "a" * 40 + "!"}  # the red team's almost-match, in a header now
    # The first request pays one capped match per pattern, which drops it from the worker's lists.
    # Rounds alternate and the cheapest of each counts, so a burst of load elsewhere cannot decide.
    dropped, plain = [], []
    for _ in range(3):
        for headers, times in ((GOOD, plain), (evil, dropped)):
            cost, answers = cpu_per_request(proxy, "/hello/", count=20, headers=headers)
            assert answers == {200}, "the costly patterns block nothing"
            times.append(cost)
    costly_us, plain_us = min(dropped) / 1e3, min(plain) / 1e3
    print(f"worker CPU per request: {costly_us:.0f} us with the costly UA, {plain_us:.0f} us without")
    assert min(dropped) < 2 * min(plain)
    assert status(proxy, "/echo/", {"User-Agent": "EvilBot"}) == 403, "the other pattern still applies"
    said = r"blocked user-agent pattern \S+ skipped until the block lists are read again: pcre"
    assert re.search(said, error_log(proxy))
