"""What `toolforgectl tools` does: mint or rotate a tool's registration token, make the server key.

Rotating bumps the tool's token generation in the route store (an audited write, like a route
change), so the old token stops working at once; the token itself is derived, never stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolforgectl.core import tokens
from toolforgectl.core.errors import ToolforgectlError, UsageError
from toolforgectl.core.models import Attribution

if TYPE_CHECKING:  # the caller passes a store in: the CLI's --help never loads redis
    from toolforgectl.adapters.routestore import RouteStore


@dataclass(frozen=True)
class Minted:
    """A tool's token as `token` made it: its generation, and where it went (`path`, else `value`)."""

    tool: str
    generation: int
    rotated: bool
    dry_run: bool
    value: str
    path: Path | None


def token(
    store: RouteStore,
    key: bytes,
    tool: str,
    *,
    rotate_by: Attribution | None,
    write: Path | None,
    owner: str | None,
    dry_run: bool,
) -> Minted:
    """`tool`'s current token; with `rotate_by`, first rotate it (attributed to them).

    With `write`, the token goes to that file (mode 0600, given to `owner`), not to the caller.
    """
    generation = store.token_generation(tool)
    if rotate_by is not None:
        generation = generation + 1 if dry_run else store.rotate_token(tool, rotate_by)
    value = tokens.mint(key, tool, generation)
    if write is not None and not dry_run:
        try:
            tokens.write_secret(write, (value + "\n").encode(), owner)
        except (OSError, LookupError) as exc:
            raise ToolforgectlError(f"{write}: cannot write the token: {exc}") from None
    return Minted(tool, generation, rotate_by is not None, dry_run, value, write)


def keygen(path: Path, *, force: bool, dry_run: bool) -> None:
    """Create the proxylistener's server key at `path`: random bytes every token is derived from."""
    if path.exists() and not force:
        raise UsageError(f"{path} exists; replacing it invalidates every token (use --force)")
    if dry_run:
        return
    try:
        tokens.write_secret(path, secrets.token_bytes(tokens.KEY_MIN_BYTES))
    except OSError as exc:
        raise ToolforgectlError(f"{path}: cannot write the key: {exc.strerror}") from None
