"""A tool's route history for `debug history`: the audit record, and the AOF's commands if at hand.

The audit record lives in Redis, so it is always there to read. The AOF is a bonus: it also
shows writes made by clients that keep no audit record (redis-cli, the original daemons), but it
may be on another machine, or off; then the history says so in a note instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolforgectl.adapters import aof
from toolforgectl.adapters.aof import Command
from toolforgectl.adapters.routestore import RouteStore, prefix_key
from toolforgectl.core import validate
from toolforgectl.core.errors import NotFoundError
from toolforgectl.core.models import AuditEntry
from toolforgectl.workflows import redisinfo


@dataclass(frozen=True)
class History:
    """What is known of a tool's route changes."""

    tool: str
    aof: Path | None
    aof_note: str | None
    changes: list[Command]
    audit: list[AuditEntry]

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: `aof` is null and `aof_note` says why when the AOF was not read."""
        return {
            "tool": self.tool,
            "aof": None if self.aof is None else str(self.aof),
            "aof_note": self.aof_note,
            "changes": [command.as_dict() for command in self.changes],
            "audit": [entry.as_dict() for entry in self.audit],
        }


def of_tool(store: RouteStore, tool: str, aof_path: Path | None = None) -> History:
    """`tool`'s history: its audit record, and its writes in the AOF (`aof_path`, else the server's).

    NotFoundError (exit 1, as `routes show`) if the tool has no routes and no history at all.
    """
    validate.tool_name(tool)
    audit = store.audit(tool)
    path, filename, note = _aof(store, aof_path)
    changes = aof.key_history(aof.files_in_order(path, filename), prefix_key(tool)) if path else []
    if not audit and not changes and not store.routes(tool):
        raise NotFoundError(f"tool {tool!r} has no routes and no recorded history in {store.url}")
    return History(tool, path, note, changes, audit)


def _aof(store: RouteStore, given: Path | None) -> tuple[Path | None, str, str | None]:
    """The AOF to read and its file name, or why there is none to read here (a note, not an error)."""
    if given is not None:
        return given, "appendonly.aof", None
    try:
        path, filename = redisinfo.aof_location(store)
    except NotFoundError as exc:
        return None, "", f"AOF not read: {exc}"
    return path, filename, None
