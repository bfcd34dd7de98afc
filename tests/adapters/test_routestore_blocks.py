"""Block lists in the route store, against a real redis-server: canonical entries, audit, limits."""

from __future__ import annotations

import json

import pytest

from tests.conftest import RedisServer
from toolforgectl.adapters.routestore import BLOCK_LIMITS, RouteStore
from toolforgectl.core.errors import ValidationError
from toolforgectl.core.models import Attribution

ALICE = Attribution("alice@bastion", "scraper at 500 req/s", "T4242")
BOB = Attribution("bob@bastion")


def test_entries_are_kept_in_canonical_form_with_who_added_them(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.add_block("ip", "203.0.113.9", ALICE)
    store.add_block("ip", "2001:DB8::/32", ALICE)
    store.add_block("user-agent", "^EvilBot", ALICE)
    stored = redis_server.client().hgetall("toolforgectl:block:ip")
    assert set(stored) == {"203.0.113.9/32", "2001:db8::/32"}
    about = json.loads(stored["203.0.113.9/32"])
    assert (about["actor"], about["reason"], about["task_id"]) == (
        "alice@bastion",
        "scraper at 500 req/s",
        "T4242",
    )
    listed = [(b.kind, b.entry, b.actor) for b in store.blocks()]
    assert listed == [
        ("ip", "2001:db8::/32", "alice@bastion"),
        ("ip", "203.0.113.9/32", "alice@bastion"),
        ("user-agent", "^EvilBot", "alice@bastion"),
    ]


def test_every_change_bumps_the_version_and_is_audited(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.add_block("referer", r"spam\.example", ALICE)
    store.remove_block("referer", r"spam\.example", BOB)
    assert store.version() == 2, "the data plane re-reads the lists on a version change"
    trail = [(e["kind"], e["action"], e["entry"], e["actor"], e["task_id"]) for e in store.block_audit()]
    assert trail == [
        ("referer", "add", r"spam\.example", "alice@bastion", "T4242"),
        ("referer", "remove", r"spam\.example", "bob@bastion", ""),
    ]


def test_a_change_that_changes_nothing_writes_nothing(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    store.add_block("ip", "198.51.100.0/24", ALICE)
    again = store.add_block("ip", "198.51.100.0/24", BOB)
    absent = store.remove_block("ip", "192.0.2.1", BOB)
    assert (again.before, again.changed, absent.before, absent.changed) == (True, False, False, False)
    assert store.version() == 1
    assert [e["actor"] for e in store.block_audit()] == ["alice@bastion"]
    assert store.blocks()[0].actor == "alice@bastion", "the first addition's record is kept"


def test_dry_run_writes_nothing(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    change = store.add_block("user-agent", "BadBot", ALICE, dry_run=True)
    assert (change.before, change.after, change.dry_run) == (False, True, True)
    assert redis_server.client().dbsize() == 0


def test_a_full_list_refuses_more_and_writes_nothing(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    limit = BLOCK_LIMITS["user-agent"]
    redis_server.client().hset(
        "toolforgectl:block:user-agent", mapping={f"bot{i}": "{}" for i in range(limit)}
    )
    with pytest.raises(ValidationError, match=f"limit of {limit}"):
        store.add_block("user-agent", "one-more", ALICE)
    assert redis_server.client().hlen("toolforgectl:block:user-agent") == limit
    assert store.version() == 0 and store.block_audit() == []


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("ip", "203.0.113.9/24"),  # host bits set
        ("ip", "0.0.0.0/0"),
        ("ip", "10.0.0.0/7"),
        ("ip", "2001::/15"),
        ("ip", "fe80::1%eth0"),
        ("ip", "::ffff:203.0.113.9"),
        ("ip", "evil.example"),
        ("user-agent", "(unclosed"),
        ("user-agent", ""),
        ("referer", "x" * 300),
        ("referer", "a\nb"),
        ("cookie", "x"),
    ],
)
def test_unusable_entries_are_refused_before_anything_is_written(
    redis_server: RedisServer, kind: str, value: str
) -> None:
    with pytest.raises(ValidationError):
        RouteStore.from_url(redis_server.url).add_block(kind, value, ALICE)
    assert redis_server.client().dbsize() == 0


def test_entries_another_writer_left_are_listed(redis_server: RedisServer) -> None:
    redis_server.client().hset("toolforgectl:block:user-agent", "TweetmemeBot", "blocked in 2014")
    blocks = RouteStore.from_url(redis_server.url).blocks("user-agent")
    assert [(b.entry, b.actor, b.time) for b in blocks] == [("TweetmemeBot", "", 0.0)]
