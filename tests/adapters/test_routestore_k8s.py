"""The route store's kube2proxy operations: batched writes and forgetting foreign members."""

from __future__ import annotations

import pytest

from tests.conftest import RedisServer
from toolforgectl.adapters.routestore import CHANGES_CHANNEL, RouteStore
from toolforgectl.core.errors import ValidationError


def test_a_batched_k8s_write_leaves_what_single_writes_leave(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_k8s_route("tool-a/a/.*", "a", ".*", "http://127.96.0.1:8000")
    version = store.version()
    pubsub = store.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANGES_CHANNEL)
    pubsub.get_message(timeout=1)
    changes = store.set_k8s_routes(
        [
            ("tool-a/a/.*", "a", ".*", "http://127.96.0.2:8000"),
            ("tool-b/b/api.*", "b", "/api.*", "http://127.96.0.3:8000"),
        ]
    )
    assert [(c.tool, c.old, c.new) for c in changes] == [
        ("a", "http://127.96.0.1:8000", "http://127.96.0.2:8000"),
        ("b", None, "http://127.96.0.3:8000"),
    ]
    assert store.routes("a") == {".*": "http://127.96.0.2:8000"}
    assert store.routes("b") == {"/api.*": "http://127.96.0.3:8000"}
    assert store.k8s_members() == {"tool-a/a/.*", "tool-b/b/api.*"}
    assert store.version() == version + 2, "caches see every change"
    assert [e.actor for e in store.audit("a")] == ["kube2proxy", "kube2proxy"]
    published = {pubsub.get_message(timeout=1)["data"] for _ in range(2)}
    assert published == {"a", "b"}


def test_a_batch_with_one_bad_backend_writes_nothing(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    with pytest.raises(ValidationError):
        store.set_k8s_routes(
            [("tool-a/a/.*", "a", ".*", "http://127.96.0.2:8000"), ("tool-b/b/.*", "b", ".*", "http://b:1")]
        )
    assert store.routes("a") == {} and store.k8s_members() == set()


def test_forgetting_a_member_leaves_every_route(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_k8s_route("legacy/x/.*", "x", ".*", "http://127.96.0.9:8000")
    store.forget_k8s_member("legacy/x/.*")
    assert store.k8s_members() == set()
    assert store.routes("x") == {".*": "http://127.96.0.9:8000"}
