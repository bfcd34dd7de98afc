"""The run lock on every proxy's Redis: all or nothing, seen through replicas, given back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer, wait_until
from toolforgectl.adapters.processes import start_redis
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core.errors import LockHeldError, RouteStoreError
from toolforgectl.workflows.playbook.lock import FleetLock


@pytest.fixture
def replica(tmp_path: Path, redis_server: RedisServer) -> Iterator[RedisServer]:
    """A second Redis replicating from `redis_server`, as a standby proxy's does."""
    primary = (redis_server.process.host, redis_server.process.port)
    process = start_redis(tmp_path / "replica", replica_of=primary)
    server = RedisServer(process, tmp_path / "replica")
    wait_until(lambda: server.client().info("replication")["master_link_status"] == "up", "replication up")
    try:
        yield server
    finally:
        process.stop()


def lock(run: str, *servers: RedisServer, actor: str = "alice@bastion") -> FleetLock:
    stores = {f"proxy-0{i}": RouteStore.from_url(s.url) for i, s in enumerate(servers, start=1)}
    return FleetLock(stores, "failover", run, actor, ttl=60)


def test_the_lock_taken_on_the_primary_reaches_the_replica_and_stops_another_run(
    redis_server: RedisServer, replica: RedisServer
) -> None:
    mine = lock("run-1", redis_server, replica)
    mine.take()
    wait_until(lambda: replica.client().get("toolforgectl:lock:failover"), "the lock to replicate")

    other = lock("run-2", replica, redis_server, actor="bob@other-bastion")  # sees the replica first
    with pytest.raises(
        LockHeldError, match=r"held by alice@bastion pid \d+ \(run run-1\) until .* \(seen on proxy-01\)"
    ):
        other.take()

    mine.release()
    wait_until(lambda: replica.client().get("toolforgectl:lock:failover") is None, "the release to replicate")
    other.take()
    assert json.loads(redis_server.client().get("toolforgectl:lock:failover"))["run"] == "run-2"


def test_a_conflict_on_one_proxy_gives_back_what_was_taken_on_the_others(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    process = start_redis(tmp_path / "second")
    second = RedisServer(process, tmp_path / "second")
    try:
        lock("run-9", second).take()  # split brain: another run holds only the second proxy's

        with pytest.raises(LockHeldError, match=r"\(run run-9\)"):
            lock("run-1", redis_server, second).take()

        assert redis_server.client().get("toolforgectl:lock:failover") is None
    finally:
        process.stop()


def test_the_lock_expires_by_itself_and_the_same_run_can_take_it_over(redis_server: RedisServer) -> None:
    first = lock("run-1", redis_server)
    first.take()
    ttl = redis_server.client().pttl("toolforgectl:lock:failover")
    assert 0 < ttl <= 60_000

    resumed = lock("run-1", redis_server)  # the same run, after its first process was killed
    resumed.take()

    assert resumed.release() == []
    assert redis_server.client().get("toolforgectl:lock:failover") is None


def test_a_proxy_whose_redis_cannot_be_reached_fails_the_run_and_nothing_stays_taken(
    redis_server: RedisServer,
) -> None:
    stores = {
        "proxy-01": RouteStore.from_url(redis_server.url),
        "proxy-02": RouteStore.from_url("redis://127.0.0.1:1/0"),
    }
    fleet_lock = FleetLock(stores, "failover", "run-1", "alice@bastion", ttl=60)

    with pytest.raises(
        RouteStoreError, match="cannot take the lock 'failover' on proxy-02: cannot reach Redis"
    ) as raised:
        fleet_lock.take()

    assert raised.value.exit_code == 3
    assert redis_server.client().get("toolforgectl:lock:failover") is None
