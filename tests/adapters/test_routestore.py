"""The route store against a real redis-server: schema compatibility, validation, atomic bookkeeping."""

from __future__ import annotations

import contextlib
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RedisServer
from toolforgectl.adapters.processes import start_redis
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import validate
from toolforgectl.core.errors import ReadOnlyReplicaError, RouteLimitError, RouteStoreError, ValidationError
from toolforgectl.core.models import Attribution

ALICE = Attribution("alice@bastion", "moving to the new cluster", "T12345")
BOB = Attribution("bob@bastion")
URL = validate.backend("http://10.0.0.5:8000")


def test_set_route_writes_the_original_schema(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_route("dplbot", ".*", URL, ALICE)
    assert redis_server.client().hgetall("prefix:dplbot") == {".*": "http://10.0.0.5:8000"}


def test_routes_written_by_other_clients_are_read(redis_server: RedisServer) -> None:
    redis_server.client().hset("prefix:foo", ".*", "http://10.0.0.1:5000")
    store = RouteStore.from_url(redis_server.url)
    assert store.routes("foo") == {".*": "http://10.0.0.1:5000"}
    assert store.tools() == ["foo"]


def test_every_write_bumps_the_version_and_is_audited_with_who_and_why(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_route("dplbot", ".*", URL, ALICE)
    store.delete_route("dplbot", ".*", BOB)
    assert store.version() == 2
    trail = [(e.action, e.backend, e.actor, e.reason, e.task_id) for e in store.audit("dplbot")]
    assert trail == [
        ("set", URL.url, "alice@bastion", "moving to the new cluster", "T12345"),
        ("delete", URL.url, "bob@bastion", "", ""),
    ]


def test_a_write_that_changes_nothing_writes_nothing(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_route("dplbot", ".*", URL, ALICE)
    again = store.set_route("dplbot", ".*", URL, BOB)
    absent = store.delete_route("dplbot", "^/nothing-here", BOB)
    assert not again.changed and not absent.changed
    assert store.version() == 1, "no version bump: every tool's cache would be flushed for nothing"
    assert [e.actor for e in store.audit("dplbot")] == ["alice@bastion"]
    calls = redis_server.client().info("commandstats")
    assert calls["cmdstat_hset"]["calls"] == 1 and "cmdstat_hdel" not in calls


def test_concurrent_identical_writes_change_the_store_once(redis_server: RedisServer) -> None:
    # Each writer checks and writes in one atomic step: of N racing identical writes, one wins.
    stores = [RouteStore.from_url(redis_server.url) for _ in range(16)]
    start = threading.Barrier(len(stores))
    results = []

    def write(store: RouteStore) -> None:
        start.wait()
        results.append(store.set_route("dplbot", ".*", URL, ALICE))

    threads = [threading.Thread(target=write, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(change.changed for change in results) == 1
    assert stores[0].version() == 1 and len(stores[0].audit("dplbot")) == 1


def test_every_writer_leaves_the_same_audit_fields(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_route("dplbot", ".*", URL, ALICE)
    store.delete_route("dplbot", ".*", Attribution("proxylistener@127.0.0.1"), only_if_backend=URL.url)
    store.set_k8s_routes([("tool-dplbot/dplbot/.*", "dplbot", ".*", URL)], Attribution("kube2proxy"))
    store.delete_k8s_route("tool-dplbot/dplbot/.*", "dplbot", ".*", Attribution("kube2proxy"))
    store.rotate_token("dplbot", ALICE)
    entries = redis_server.client().xrange("toolforgectl:audit:dplbot")
    assert [fields["action"] for _, fields in entries] == ["set", "delete", "set", "delete", "rotate-token"]
    assert {frozenset(fields) for _, fields in entries} == {
        frozenset({"time", "tool", "action", "route", "backend", "actor", "reason", "task_id"})
    }


def test_unregister_of_a_stale_backend_keeps_the_newer_route(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_route("dplbot", ".*", validate.backend("http://10.0.0.5:9001"), Attribution("new-job"))
    old_job = Attribution("old-job")
    change = store.delete_route("dplbot", ".*", old_job, only_if_backend="http://10.0.0.5:9000")
    assert not change.changed
    assert store.routes("dplbot") == {".*": "http://10.0.0.5:9001"}
    assert [e.actor for e in store.audit("dplbot")] == ["new-job"]


def test_dry_run_writes_nothing(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    change = store.set_route("dplbot", ".*", URL, ALICE, dry_run=True)
    assert change.changed and change.dry_run
    assert redis_server.client().dbsize() == 0


def test_listing_many_tools_uses_scan_and_sees_them_all(redis_server: RedisServer) -> None:
    client = redis_server.client()
    pipe = client.pipeline()
    for i in range(2500):
        pipe.hset(f"prefix:tool{i}", ".*", f"http://10.0.0.5:{1024 + i}")
    pipe.execute()
    routes = RouteStore.from_url(redis_server.url).all_routes()
    assert len(routes) == 2500 and routes["tool2499"] == {".*": "http://10.0.0.5:3523"}


def test_unreachable_redis_is_a_route_store_error() -> None:
    store = RouteStore.from_url("redis://127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(RouteStoreError, match="cannot reach Redis"):
        store.routes("dplbot")


def test_writing_to_a_replica_names_the_problem(redis_server: RedisServer) -> None:
    primary = redis_server.process
    replica = start_redis(redis_server.directory.parent / "replica", replica_of=(primary.host, primary.port))
    try:
        store = RouteStore.from_url(f"redis://{replica.host}:{replica.port}/0")
        with pytest.raises(ReadOnlyReplicaError, match="read-only replica"):
            store.set_route("dplbot", ".*", URL, ALICE)
    finally:
        replica.stop()


def test_passwords_never_appear_in_errors() -> None:
    store = RouteStore.from_url("redis://:s3cret@127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(RouteStoreError) as raised:
        store.ping()
    assert "s3cret" not in str(raised.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tool=st.one_of(st.text(max_size=70), st.sampled_from(["ok", "../x", "a b", "A"])),
    route=st.one_of(st.text(max_size=40), st.just(".*")),
    backend=st.one_of(st.text(max_size=60), st.sampled_from(["http://10.0.0.5:80", "http://u:p@h:1"])),
)
def test_no_input_makes_the_store_hold_an_invalid_key_or_value(
    shared_redis: RedisServer, tool: str, route: str, backend: str
) -> None:
    store = RouteStore.from_url(shared_redis.url)
    with contextlib.suppress(ValidationError):
        store.set_route(tool, route, validate.backend(backend), Attribution("fuzz"))
    client = shared_redis.client()
    for key in client.scan_iter(match="prefix:*"):
        validate.tool_name(key.removeprefix("prefix:"))
        for stored_route, stored_backend in client.hgetall(key).items():
            assert validate.route(stored_route) == stored_route
            assert validate.backend(stored_backend).url == stored_backend


def test_a_write_with_a_rotated_token_generation_changes_nothing(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_route("dplbot", ".*", URL, Attribution("job"))
    assert store.rotate_token("dplbot", ALICE) == 1
    other = validate.backend("http://10.0.0.5:9999")
    with pytest.raises(ValidationError, match="token was rotated"):
        store.set_route("dplbot", ".*", other, Attribution("old-token"), token_generation=0)
    with pytest.raises(ValidationError, match="token was rotated"):
        store.delete_route("dplbot", ".*", Attribution("old-token"), token_generation=0)
    assert store.routes("dplbot") == {".*": URL.url}
    store.delete_route("dplbot", ".*", Attribution("new-token"), token_generation=1)
    assert store.routes("dplbot") == {}
    assert [e.actor for e in store.audit("dplbot")] == ["job", "alice@bastion", "new-token"]


def test_a_tool_gets_no_route_past_the_cap_however_it_is_written(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url, max_routes=3)
    for route in ("^/a", "^/b", "^/c"):
        store.set_route("busy", route, URL, ALICE)
    version, trail = store.version(), store.audit("busy")
    for dry_run in (True, False):
        with pytest.raises(RouteLimitError) as refused:
            store.set_route("busy", "^/d", URL, BOB, dry_run=dry_run)
        assert str(refused.value) == (
            "tool busy already has 3 routes, the most one tool may have"
            " (dataplane.max_routes_per_tool is 3); delete one first"
        )
    assert (store.version(), store.audit("busy")) == (version, trail), "nothing written, nothing audited"
    assert sorted(store.routes("busy")) == ["^/a", "^/b", "^/c"]
    moved = store.set_route("busy", "^/a", validate.backend("http://10.0.0.5:8001"), BOB)
    assert moved.changed, "a route the tool has can still be pointed elsewhere at the cap"
    store.delete_route("busy", "^/b", BOB)
    assert store.set_route("busy", "^/d", URL, BOB).changed, "deleting one makes room"


def test_the_default_cap_is_small_since_clients_only_register_dot_star(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    for number in range(validate.MAX_ROUTES_PER_TOOL):
        store.set_route("busy", f"^/{number}/", URL, ALICE)
    with pytest.raises(RouteLimitError):
        store.set_route("busy", "^/one-more/", URL, ALICE)
    assert validate.MAX_ROUTES_PER_TOOL == 16
