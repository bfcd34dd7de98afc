"""What `toolforgectl block` does: list, add and remove block list entries, verifying every write.

The lists live in the route store (`toolforgectl:block:<kind>`) and the data plane reads them like
routes: a change is live on the proxy within one invalidation, without a reload. Every write is
attributed and audited as a route write is, and re-read afterwards: the store must say what we
wrote, or the command fails (exit 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolforgectl.core.errors import NotFoundError, ToolforgectlError, ValidationError
from toolforgectl.core.models import BLOCK_KINDS, Attribution, Block, BlockChange, BlockKind

if TYPE_CHECKING:  # the caller passes a store in: the CLI's --help never loads redis
    from toolforgectl.adapters.routestore import RouteStore


def kind_of(value: str | None) -> BlockKind | None:
    """The block kind `value` names (None: every kind); ValidationError for any other word."""
    if value is None:
        return None
    for kind in BLOCK_KINDS:
        if value == kind:
            return kind
    raise ValidationError(f"block kind {value!r} is not one of {', '.join(BLOCK_KINDS)}")


def list_blocks(store: RouteStore, kind: str | None = None) -> list[Block]:
    """Every entry of the block list of `kind` (default: of every kind)."""
    return store.blocks(kind_of(kind))


def add(store: RouteStore, kind: str, value: str, by: Attribution, *, dry_run: bool) -> BlockChange:
    """Block `value` (validated, kept in canonical form), then verify; unchanged if already blocked."""
    change = store.add_block(kind, value, by, dry_run=dry_run)
    verify(store, change)
    return change


def remove(store: RouteStore, kind: str, value: str, by: Attribution, *, dry_run: bool) -> BlockChange:
    """Unblock `value`, then verify. NotFoundError if it was not in the list."""
    change = store.remove_block(kind, value, by, dry_run=dry_run)
    if not change.before:
        raise NotFoundError(f"{change.kind} {change.entry!r} is not in the block list of {store.url}")
    verify(store, change)
    return change


def verify(store: RouteStore, change: BlockChange) -> None:
    """Re-read after a write: the entry must now be in the list exactly when the write says so."""
    if change.dry_run:
        return
    present = any(block.entry == change.entry for block in store.blocks(change.kind))
    if present != change.after:
        state = "still" if present else "not"
        raise ToolforgectlError(f"verify failed: {change.kind} {change.entry!r} is {state} in the block list")
