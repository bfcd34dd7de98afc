"""The route store against a real redis-server: schema compatibility, validation, atomic bookkeeping."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RedisServer
from toolforgectl.adapters.processes import start_redis
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import validate
from toolforgectl.core.errors import ReadOnlyReplicaError, RouteStoreError, ValidationError


def test_set_route_writes_the_original_schema(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_route("dplbot", ".*", "http://127.0.0.1:8000", actor="test")
    assert redis_server.client().hgetall("prefix:dplbot") == {".*": "http://127.0.0.1:8000"}


def test_routes_written_by_other_clients_are_read(redis_server: RedisServer) -> None:
    redis_server.client().hset("prefix:foo", ".*", "http://10.0.0.1:5000")
    store = RouteStore.from_url(redis_server.url)
    assert store.routes("foo") == {".*": "http://10.0.0.1:5000"}
    assert store.tools() == ["foo"]


def test_every_write_bumps_the_version_and_is_audited(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_route("dplbot", ".*", "http://127.0.0.1:8000", actor="alice")
    store.delete_route("dplbot", ".*", actor="bob")
    assert store.version() == 2
    trail = [(e.action, e.backend, e.actor) for e in store.audit("dplbot")]
    assert trail == [("set", "http://127.0.0.1:8000", "alice"), ("delete", "http://127.0.0.1:8000", "bob")]


def test_writes_are_announced_on_the_changes_channel(redis_server: RedisServer) -> None:
    pubsub = redis_server.client().pubsub()
    pubsub.subscribe("toolforgectl:routes:changes")
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    RouteStore.from_url(redis_server.url).set_route("dplbot", ".*", "http://127.0.0.1:1", actor="t")
    message = pubsub.get_message(timeout=2)
    assert message is not None and message["data"] == "dplbot"


def test_unregister_of_a_stale_backend_keeps_the_newer_route(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_route("dplbot", ".*", "http://127.0.0.1:9001", actor="new-job")
    change = store.delete_route("dplbot", ".*", actor="old-job", only_if_backend="http://127.0.0.1:9000")
    assert not change.changed
    assert store.routes("dplbot") == {".*": "http://127.0.0.1:9001"}


def test_dry_run_writes_nothing(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    change = store.set_route("dplbot", ".*", "http://127.0.0.1:8000", actor="t", dry_run=True)
    assert change.changed and change.dry_run
    assert redis_server.client().dbsize() == 0


def test_import_validates_everything_before_writing_anything(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    data = {"good": {".*": "http://127.0.0.1:1"}, "bad": {".*": "ftp://127.0.0.1:1"}}
    with pytest.raises(ValidationError):
        store.import_routes(data, actor="t")
    assert redis_server.client().dbsize() == 0


def test_listing_many_tools_uses_scan_and_sees_them_all(redis_server: RedisServer) -> None:
    client = redis_server.client()
    pipe = client.pipeline()
    for i in range(2500):
        pipe.hset(f"prefix:tool{i}", ".*", f"http://127.0.0.1:{1024 + i}")
    pipe.execute()
    routes = RouteStore.from_url(redis_server.url).all_routes()
    assert len(routes) == 2500 and routes["tool2499"] == {".*": "http://127.0.0.1:3523"}


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
            store.set_route("dplbot", ".*", "http://127.0.0.1:8000", actor="t")
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
    backend=st.one_of(st.text(max_size=60), st.sampled_from(["http://127.0.0.1:80", "http://u:p@h:1"])),
)
def test_no_input_makes_the_store_hold_an_invalid_key_or_value(
    shared_redis: RedisServer, tool: str, route: str, backend: str
) -> None:
    store = RouteStore.from_url(shared_redis.url)
    with contextlib.suppress(ValidationError):
        store.set_route(tool, route, backend, actor="fuzz")
    client = shared_redis.client()
    for key in client.scan_iter(match="prefix:*"):
        validate.tool_name(key.removeprefix("prefix:"))
        for stored_route, stored_backend in client.hgetall(key).items():
            assert validate.route(stored_route) == stored_route
            assert validate.backend(stored_backend) == stored_backend


def test_delete_with_a_rotated_token_generation_changes_nothing(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_route("dplbot", ".*", "http://127.0.0.1:9000", actor="job")
    store.rotate_token("dplbot")
    with pytest.raises(ValidationError, match="token was rotated"):
        store.delete_route("dplbot", ".*", actor="old-token", token_generation=0)
    assert store.routes("dplbot") == {".*": "http://127.0.0.1:9000"}
    store.delete_route("dplbot", ".*", actor="new-token", token_generation=1)
    assert store.routes("dplbot") == {}
