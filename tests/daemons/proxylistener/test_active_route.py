"""proxylistener writes to the active proxy's Redis wherever it is reached: a client that still
registers with the old proxy during a failover gets `ok`, and its route is where it counts."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import RedisServer, wait_until
from tests.daemons.regstack import Listener, Stack, exchange
from toolforgectl.adapters.routestore import RouteStore, wait_caught_up

REGISTER = b"register\n.*\nhttp://127.0.0.1:41234\n"
ROUTE = {".*": "http://127.0.0.1:41234"}


def two_proxies(primary: RedisServer, replica: RedisServer) -> list[dict[str, str]]:
    """proxy-01's Redis is the primary, proxy-02's its replica (the standby)."""
    return [
        {"name": "proxy-01", "address": "127.0.0.1", "redis": primary.url},
        {"name": "proxy-02", "address": "127.0.0.2", "redis": replica.url},
    ]


def standby_listener(stack: Stack, replica: RedisServer, active: bytes | None) -> Listener:
    """proxylistener of proxy-02 (`--proxy proxy-02`, its own Redis the replica)."""
    file = stack.tmp / "active-proxy"
    if active is not None:
        file.write_bytes(active)
    proxies = two_proxies(stack.redis, replica)
    return stack.listener(replica.url, ("--proxy", "proxy-02"), proxies=proxies, active_proxy_file=str(file))


def logged(listener: Listener, count: int) -> list[dict[str, Any]]:
    """The request log lines, once there are `count` (each is written just after its reply)."""

    def enough() -> list[dict[str, Any]]:
        found = listener.log_entries()
        return found if len(found) >= count else []

    return wait_until(enough, f"{count} request log lines")


def register(listener: Listener) -> bytes:
    return exchange(listener.port, REGISTER + listener.token("mytool").encode() + b"\n")


@pytest.mark.parametrize("active", [b"proxy-01", b"127.0.0.1", b"proxy-01.eqiad.example\n", None])
def test_a_standby_writes_to_the_active_proxys_redis_and_replication_brings_it_back(
    stack: Stack, redis_replica: RedisServer, active: bytes | None
) -> None:
    listener = standby_listener(stack, redis_replica, active)

    assert register(listener) == b"ok"

    assert stack.client().hgetall("prefix:mytool") == ROUTE, "written to the active proxy's Redis"
    wait_caught_up(RouteStore.from_url(stack.redis_url), RouteStore.from_url(redis_replica.url))
    assert redis_replica.client().hgetall("prefix:mytool") == ROUTE
    (entry,) = logged(listener, 1)
    assert entry["written_to"] == "proxy-01", "the log says the write went to the active proxy"


def test_an_unregister_on_the_standby_removes_the_route_from_the_active_proxy(
    stack: Stack, redis_replica: RedisServer
) -> None:
    listener = standby_listener(stack, redis_replica, b"proxy-01")
    assert register(listener) == b"ok"

    reply = exchange(listener.port, b"unregister\n.*\n" + listener.token("mytool").encode() + b"\n")

    assert reply == b"ok"
    assert stack.client().hgetall("prefix:mytool") == {}


def test_the_kill_switch_turns_registration_off_even_where_redis_takes_writes(stack: Stack) -> None:
    (stack.tmp / "active-proxy").write_bytes(b"")
    file = str(stack.tmp / "active-proxy")
    listener = stack.listener(args=("--proxy", "proxy-01"), active_proxy_file=file)

    assert register(listener) == b"Registration is switched off."
    assert stack.client().hgetall("prefix:mytool") == {}


def test_during_a_failover_a_proxy_named_active_whose_redis_is_a_replica_says_try_again(
    stack: Stack, redis_replica: RedisServer
) -> None:
    # proxy-02 is named active already, but its Redis is not promoted yet: the client must retry.
    listener = standby_listener(stack, redis_replica, b"proxy-02")

    reply = register(listener)

    assert b"try again" in reply, reply  # the clients' transient marker: they retry
    assert stack.client().hgetall("prefix:mytool") == {}


def test_the_file_is_read_per_request_so_a_failover_needs_no_restart(
    stack: Stack, redis_replica: RedisServer
) -> None:
    listener = standby_listener(stack, redis_replica, b"proxy-02")
    assert b"try again" in register(listener)

    (stack.tmp / "active-proxy").write_bytes(b"proxy-01")
    assert register(listener) == b"ok"
    wait_until(lambda: redis_replica.client().hgetall("prefix:mytool") == ROUTE, "the route to replicate")
    assert [e["written_to"] for e in logged(listener, 2)] == [None, "proxy-01"]


def test_a_proxy_deployed_after_the_listener_started_is_found_by_reading_the_fleet_again(
    stack: Stack, redis_replica: RedisServer
) -> None:
    """`deploy proxy` adds proxy-03 to the fleet config; a failover to it must not make the
    listeners that started before refuse registrations as for an unknown host."""
    listener = standby_listener(stack, redis_replica, b"proxy-03")
    config = listener.log.parent / "config.yaml"
    fleet = yaml.safe_load(config.read_text())
    fleet["proxies"].append({"name": "proxy-03", "address": "127.0.0.3", "redis": stack.redis_url})
    config.write_text(yaml.safe_dump(fleet))

    assert register(listener) == b"ok"

    assert stack.client().hgetall("prefix:mytool") == ROUTE, "written to proxy-03's Redis"
    (entry,) = logged(listener, 1)
    assert entry["written_to"] == "proxy-03"
