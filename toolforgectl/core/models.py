"""Plain data passed between layers: route changes and audit entries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Action = Literal["set", "delete"]


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

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of this entry."""
        return asdict(self)
