"""Replication operations of the route store against two real redis-servers (a primary and its
replica): what a failover moves the primary with, and what it must not lose."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.conftest import LOOPBACK_TOOLS, RedisServer, wait_until
from toolforgectl.adapters.processes import binary, free_port, spawn, start_redis_from
from toolforgectl.adapters.routestore import RouteStore, wait_caught_up
from toolforgectl.core import validate
from toolforgectl.core.errors import ReadOnlyReplicaError, TimedOutError
from toolforgectl.core.models import Attribution

OPS = Attribution("ops@bastion", "failover drill")


def stores(*servers: RedisServer) -> list[RouteStore]:
    return [RouteStore.from_url(server.url, destinations=LOOPBACK_TOOLS) for server in servers]


def backend(n: int) -> validate.Backend:
    return validate.backend(f"http://10.0.0.5:{8000 + n}")


def test_roles_links_and_offsets_are_read(redis_server: RedisServer, redis_replica: RedisServer) -> None:
    primary, replica = stores(redis_server, redis_replica)
    primary.set_route("dplbot", ".*", backend(0), OPS)
    wait_caught_up(primary, replica)

    up, copy = primary.replication(), replica.replication()
    assert (up.role, up.is_primary, up.replicas, up.link_up) == ("primary", True, 1, None)
    assert (copy.role, copy.is_primary, copy.link_up) == ("replica", False, True)
    assert copy.primary == (redis_server.process.host, redis_server.process.port)
    assert copy.offset == up.offset > 0


def test_a_write_acknowledged_on_the_primary_is_on_the_replica_after_the_wait(
    redis_server: RedisServer, redis_replica: RedisServer
) -> None:
    primary, replica = stores(redis_server, redis_replica)
    for n in range(200):
        primary.set_route(f"tool{n}", ".*", backend(n), OPS)
    primary.pause_writes(5000)
    try:
        offset = wait_caught_up(primary, replica)
    finally:
        primary.unpause()
    assert offset == primary.replication().offset
    assert replica.all_routes() == primary.all_routes()
    assert len(replica.all_routes()) == 200


def test_pausing_holds_writes_until_unpaused_while_reads_go_on(redis_server: RedisServer) -> None:
    (primary,) = stores(redis_server)
    primary.pause_writes(10_000)
    writer = threading.Thread(target=primary.set_route, args=("held", ".*", backend(1), OPS))
    try:
        writer.start()
        # The write is waiting inside Redis: the server counts it as a paused client.
        paused = lambda: redis_server.client().info("clients").get("blocked_clients", 0) >= 1  # noqa: E731
        wait_until(paused, "the write to be held by CLIENT PAUSE WRITE")
        assert primary.routes("held") == {}, "reads go on, and the held write is not applied yet"
    finally:
        primary.unpause()
    writer.join(timeout=10)
    assert primary.routes("held") == {".*": backend(1).url}


def test_promotion_and_repointing_keep_every_key(
    redis_server: RedisServer, redis_replica: RedisServer
) -> None:
    old, new = stores(redis_server, redis_replica)
    for n in range(50):
        old.set_route(f"tool{n}", ".*", backend(n), OPS)
    old.pause_writes(5000)
    wait_caught_up(old, new)
    new.promote()
    old.replicate_from(redis_replica.process.host, redis_replica.process.port)
    old.unpause()

    new.set_route("after", ".*", backend(99), OPS)  # the new primary takes writes ...
    wait_caught_up(new, old)  # ... and the old one follows it
    assert new.replication().is_primary and not old.replication().is_primary
    assert old.all_routes() == new.all_routes()
    assert len(new.all_routes()) == 51
    assert [e.actor for e in old.audit("tool7")] == ["ops@bastion"], "the audit trail moved too"
    with pytest.raises(ReadOnlyReplicaError):
        old.set_route("late", ".*", backend(1), OPS)


def test_waiting_for_a_replica_that_cannot_catch_up_times_out(
    redis_server: RedisServer, redis_replica: RedisServer
) -> None:
    primary, replica = stores(redis_server, redis_replica)
    replica.promote()  # no longer replicating: it will never reach the primary's offset
    primary.set_route("dplbot", ".*", backend(0), OPS)
    with pytest.raises(TimedOutError, match="replication offset"):
        wait_caught_up(primary, replica, timeout=0.5)


def test_a_role_saved_after_a_switch_survives_a_restart_from_the_config_file(
    redis_server: RedisServer, redis_replica: RedisServer
) -> None:
    old, new = stores(redis_server, redis_replica)
    new.promote()
    old.replicate_from(redis_replica.process.host, redis_replica.process.port)
    assert old.save_role() and new.save_role()

    restarted = []
    for server in (redis_server, redis_replica):  # as a reboot would: from the file rendered before
        server.process.stop()
        conf = server.directory / "redis.conf"
        restarted.append(
            start_redis_from(conf, server.process.host, server.process.port, server.directory / "log")
        )
    try:
        assert new.replication().is_primary
        assert old.replication().primary == (redis_replica.process.host, redis_replica.process.port)
    finally:
        for process in restarted:
            process.stop()


def test_a_redis_without_a_config_file_cannot_save_its_role_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    argv = [binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    process = spawn("redis-server", argv, tmp_path / "redis.log", "127.0.0.1", port)
    try:
        assert RouteStore.from_url(f"redis://127.0.0.1:{port}/0").save_role() is False
    finally:
        process.stop()
