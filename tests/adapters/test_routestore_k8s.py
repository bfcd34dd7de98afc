"""The route store's kube2proxy operations: batched writes and forgetting foreign members."""

from __future__ import annotations

import pytest

from tests.conftest import RedisServer
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import validate
from toolforgectl.core.errors import ValidationError
from toolforgectl.core.models import Attribution

KUBE2PROXY = Attribution("kube2proxy")


def test_a_batched_k8s_write_leaves_what_single_writes_leave(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_k8s_routes([("tool-a/a/.*", "a", ".*", validate.backend("http://10.96.0.1:8000"))], KUBE2PROXY)
    version = store.version()
    changes = store.set_k8s_routes(
        [
            ("tool-a/a/.*", "a", ".*", validate.backend("http://10.96.0.2:8000")),
            ("tool-b/b/api.*", "b", "/api.*", validate.backend("http://10.96.0.3:8000")),
        ],
        KUBE2PROXY,
    )
    assert [(c.tool, c.old, c.new) for c in changes] == [
        ("a", "http://10.96.0.1:8000", "http://10.96.0.2:8000"),
        ("b", None, "http://10.96.0.3:8000"),
    ]
    assert store.routes("a") == {".*": "http://10.96.0.2:8000"}
    assert store.routes("b") == {"/api.*": "http://10.96.0.3:8000"}
    assert store.k8s_members() == {"tool-a/a/.*", "tool-b/b/api.*"}
    assert store.version() == version + 2, "caches see every change"
    assert [e.actor for e in store.audit("a")] == ["kube2proxy", "kube2proxy"]


def test_adopting_a_route_already_in_place_records_ownership_only(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    backend = validate.backend("http://10.96.0.1:8000")
    store.set_route("a", ".*", backend, Attribution("proxylistener@10.96.0.1"))
    version = store.version()
    [change] = store.set_k8s_routes([("tool-a/a/.*", "a", ".*", backend)], KUBE2PROXY)
    assert not change.changed and store.k8s_members() == {"tool-a/a/.*"}
    assert store.version() == version and len(store.audit("a")) == 1


def test_deleting_a_k8s_route_already_gone_only_drops_the_member(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_k8s_routes([("tool-a/a/.*", "a", ".*", validate.backend("http://10.96.0.1:8000"))], KUBE2PROXY)
    store.delete_route("a", ".*", Attribution("alice@bastion"))
    version = store.version()
    change = store.delete_k8s_route("tool-a/a/.*", "a", ".*", KUBE2PROXY)
    assert not change.changed and store.k8s_members() == set()
    assert store.version() == version, "nothing changed for the data plane"


def test_a_batch_with_one_bad_route_writes_nothing(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    backend = validate.backend("http://10.96.0.2:8000")
    with pytest.raises(ValidationError):
        store.set_k8s_routes(
            [("tool-a/a/.*", "a", ".*", backend), ("tool-b/b/(", "b", "(", backend)], KUBE2PROXY
        )
    assert store.routes("a") == {} and store.k8s_members() == set()


def test_forgetting_a_member_leaves_every_route(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.set_k8s_routes([("legacy/x/.*", "x", ".*", validate.backend("http://10.96.0.9:8000"))], KUBE2PROXY)
    store.forget_k8s_member("legacy/x/.*")
    assert store.k8s_members() == set()
    assert store.routes("x") == {".*": "http://10.96.0.9:8000"}


def test_a_k8s_route_past_the_cap_is_not_written_nor_owned(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url, max_routes=1)
    backend = validate.backend("http://10.96.0.1:8000")
    changes = store.set_k8s_routes(
        [("tool-a/a/.*", "a", ".*", backend), ("tool-a/a2/api", "a", "^/api", backend)], KUBE2PROXY
    )
    assert [(c.route, c.old, c.new) for c in changes] == [(".*", None, backend.url), ("^/api", None, None)]
    assert store.routes("a") == {".*": backend.url}
    assert store.k8s_members() == {"tool-a/a/.*"}
