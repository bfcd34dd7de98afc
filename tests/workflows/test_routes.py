"""The routes workflow against a real redis-server: what import and delete promise before writing."""

from __future__ import annotations

import pytest

from tests.conftest import RedisServer
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core.errors import NotFoundError, ValidationError
from toolforgectl.core.models import Attribution
from toolforgectl.workflows import routes

ALICE = Attribution("alice@bastion")


def test_import_validates_everything_before_writing_anything(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    data = {"good": {".*": "http://10.0.0.5:1"}, "bad": {".*": "ftp://127.0.0.1:1"}}
    with pytest.raises(ValidationError):
        routes.import_routes(store, data, ALICE, dry_run=False)
    assert redis_server.client().dbsize() == 0


def test_a_dry_run_import_recaps_without_writing(redis_server: RedisServer) -> None:
    redis_server.client().hset("prefix:kept", ".*", "http://10.0.0.5:9")
    store = RouteStore.from_url(redis_server.url)
    done = routes.import_routes(store, {"new": {".*": "http://10.0.0.5:1"}}, ALICE, dry_run=True)
    assert done.recap == routes.Recap(added=1, changed=0, unchanged=0, kept=1)
    assert all(change.dry_run for change in done.changes)
    assert redis_server.client().dbsize() == 1


def test_deleting_a_route_that_is_not_there_is_not_found_and_not_audited(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    with pytest.raises(NotFoundError):
        routes.delete(store, "dplbot", ".*", ALICE, dry_run=False)
    assert redis_server.client().dbsize() == 0
