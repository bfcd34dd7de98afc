"""Plain data passed between layers: backends, route changes, who made them, and audit entries."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

Action = Literal["set", "delete", "rotate-token", "redirect"]
# What a block list entry matches: the client address (an address or CIDR network), or a regex
# over the User-Agent or Referer header.
BlockKind = Literal["ip", "user-agent", "referer"]
BLOCK_KINDS: tuple[BlockKind, ...] = get_args(BlockKind)
BlockAction = Literal["add", "remove"]
Scheme = Literal["http", "https"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# A backend's host: an IP literal, or a lowercase DNS name (`tools-webgrid-lighttpd-1205.tools.eqiad.wmflabs`)
# that the data plane resolves off the request path.
Host = IPAddress | str


@dataclass(frozen=True)
class Backend:
    """Where a route points, parsed once where it enters (`validate.backend`) and passed on as is.

    Only `validate.backend` should build one from text: it holds the rules (an IP literal naming
    one host, or a DNS name; port 1-65535; no credentials or path), so a Backend anywhere else is
    known to be well-formed. Where it may point is a separate question, per fleet
    (`core/destinations.py`).
    """

    scheme: Scheme
    host: Host
    port: int

    @property
    def is_name(self) -> bool:
        """Whether the host is a DNS name (resolved by the data plane) rather than an IP literal."""
        return isinstance(self.host, str)

    @property
    def url(self) -> str:
        """The canonical form stored in `prefix:<tool>`: `http://10.0.0.5:41234`, `http://[::1]:80`,
        `http://tools-webgrid-lighttpd-1205.tools.eqiad.wmflabs:33555`."""
        host = f"[{self.host}]" if isinstance(self.host, ipaddress.IPv6Address) else str(self.host)
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class Attribution:
    """Who makes a change and why: what the audit record keeps besides the change itself.

    `actor` is `user@host` for an operator (the sudo user first), or a daemon's own name
    (`proxylistener@<peer>`, `kube2proxy`); `reason` and `task_id` are free text, maybe empty.
    """

    actor: str
    reason: str = ""
    task_id: str = ""


@dataclass(frozen=True)
class RouteChange:
    """One route written or removed (or that would be, on a dry run)."""

    tool: str
    route: str
    action: Action
    old: str | None
    new: str | None
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        """Whether the store's content differs (or would differ) after this change."""
        return self.old != self.new

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of this change."""
        return {**asdict(self), "changed": self.changed}


@dataclass(frozen=True)
class AuditEntry:
    """One accepted change as recorded in the route store's audit stream."""

    id: str
    time: float
    tool: str
    action: str
    route: str
    backend: str
    actor: str
    reason: str
    task_id: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of this entry."""
        return asdict(self)


@dataclass(frozen=True)
class Block:
    """One block list entry as the route store holds it: what it matches, and who added it why."""

    kind: BlockKind
    entry: str
    actor: str = ""
    reason: str = ""
    task_id: str = ""
    time: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of this entry."""
        return asdict(self)


@dataclass(frozen=True)
class BlockChange:
    """One block list entry added or removed (or that would be, on a dry run).

    `before` and `after` say whether the entry is in the list before and after the write.
    """

    kind: BlockKind
    entry: str
    action: BlockAction
    before: bool
    after: bool
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        """Whether the list differs (or would differ) after this change."""
        return self.before != self.after

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of this change."""
        return {**asdict(self), "changed": self.changed}
