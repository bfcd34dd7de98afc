"""workflows/blocks.py: every write is verified against what the store says afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RedisServer
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core.errors import NotFoundError, ToolforgectlError
from toolforgectl.core.models import Attribution, Block, BlockChange
from toolforgectl.workflows import blocks

ALICE = Attribution("alice@bastion")


class _Forgetful:
    """A store that accepts every write and then reads as if it never happened (a lost write)."""

    url = "redis://forgetful"

    def add_block(self, kind: str, value: str, by: Attribution, *, dry_run: bool) -> BlockChange:
        return BlockChange("user-agent", value, "add", False, True, dry_run)

    def blocks(self, kind: Any = None) -> list[Block]:
        return []


def test_a_write_the_store_does_not_show_afterwards_fails_verification() -> None:
    store: Any = _Forgetful()
    with pytest.raises(
        ToolforgectlError, match="verify failed: user-agent 'BadBot' is not in the block list"
    ):
        blocks.add(store, "user-agent", "BadBot", ALICE, dry_run=False)
    assert blocks.add(store, "user-agent", "BadBot", ALICE, dry_run=True).dry_run


def test_removing_an_entry_that_is_not_there_is_not_found_and_not_audited(redis_server: RedisServer) -> None:
    store = RouteStore.from_url(redis_server.url)
    with pytest.raises(NotFoundError):
        blocks.remove(store, "ip", "192.0.2.1", ALICE, dry_run=False)
    assert store.block_audit() == [] and store.version() == 0
