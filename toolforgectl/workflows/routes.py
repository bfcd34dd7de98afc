"""What `toolforgectl routes` does: show, set and delete with verify-after-write, export and import.

Every write re-reads the store afterwards: the store must say what we wrote, or the command fails
(exit 1) naming the route that differs. The export file is JSON:

    {"format": "toolforgectl-routes/1", "routes": {"<tool>": {"<route>": "<backend>"}}}

and `import` reads only that: an unknown `format`, a duplicate key, input that is not UTF-8 or
nested past what the parser takes is refused in one line (exit 2) before anything is written.
Every route is validated before the first write; a store failing part-way says how far it got.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolforgectl.adapters import probe
from toolforgectl.core import validate
from toolforgectl.core.errors import NotFoundError, RouteStoreError, ToolforgectlError, UsageError
from toolforgectl.core.models import Attribution, Backend, RouteChange

if TYPE_CHECKING:  # the caller passes a store in: the CLI's --help never loads redis
    from toolforgectl.adapters.routestore import RouteStore

EXPORT_FORMAT = "toolforgectl-routes/1"

Routes = dict[str, dict[str, str]]


def show(store: RouteStore, tool: str, timeout: float | None) -> dict[str, Any]:
    """`tool`'s routes, each TCP-probed within `timeout` (None: not probed), and its redirects."""
    routes = store.routes(tool)
    if not routes:
        raise NotFoundError(f"tool {tool!r} has no routes in {store.url}")
    rows = [_row(route, backend, timeout) for route, backend in sorted(routes.items())]
    return {"tool": tool, "routes": rows, "redirects": store.redirects(tool)}


def _row(route: str, backend: str, timeout: float | None) -> dict[str, Any]:
    """A route's row; `reachable` is None when probing was skipped (timeout None)."""
    if timeout is None:
        return {"route": route, "backend": backend, "reachable": None, "connect_ms": None, "error": None}
    result = probe.tcp_connect(backend, timeout)
    return {"route": route, "backend": backend, **asdict(result)}


def set_route(
    store: RouteStore, tool: str, route: str, backend: Backend, by: Attribution, *, dry_run: bool
) -> RouteChange:
    """Point `tool`'s `route` at `backend`, then verify; unchanged if it already pointed there."""
    change = store.set_route(tool, route, backend, by, dry_run=dry_run)
    verify(store, [change])
    return change


def delete(
    store: RouteStore, tool: str, route: str | None, by: Attribution, *, dry_run: bool
) -> list[RouteChange]:
    """Delete `tool`'s `route`, or every route of it (None), then verify. NotFoundError if none was there."""
    if route is None:
        changes = store.delete_tool(tool, by, dry_run=dry_run)
    else:
        changes = [store.delete_route(tool, route, by, dry_run=dry_run)]
    if not any(change.old is not None for change in changes):
        raise NotFoundError(f"tool {tool!r} has no such route in {store.url}")
    verify(store, changes)
    return changes


def verify(store: RouteStore, changes: Iterable[RouteChange]) -> None:
    """Re-read after a write (each tool once): the store must now say what we wrote."""
    written = [change for change in changes if not change.dry_run]
    for tool in dict.fromkeys(change.tool for change in written):
        now = store.routes(tool)
        for change in (c for c in written if c.tool == tool):
            if now.get(change.route) != change.new:
                found, expected = now.get(change.route), change.new
                raise ToolforgectlError(
                    f"verify failed: {tool} {change.route!r} is {found!r}, expected {expected!r}"
                )


# Export and import ---------------------------------------------------------------------------


def export(store: RouteStore) -> dict[str, Any]:
    """Every route, in the export format."""
    return {"format": EXPORT_FORMAT, "routes": store.all_routes()}


@dataclass(frozen=True)
class Recap:
    """What an import did to the store: routes added, changed, already so, and kept (not in the file)."""

    added: int
    changed: int
    unchanged: int
    kept: int


@dataclass(frozen=True)
class Imported:
    """The changes an import made (or would make), and their recap."""

    changes: list[RouteChange]
    recap: Recap


def import_routes(store: RouteStore, routes: Routes, by: Attribution, *, dry_run: bool) -> Imported:
    """Write every route of `routes` (validated first, all of them), then verify.

    Routes the store has and the file does not are kept. A route already so is not written.
    """
    checked = sorted(
        (
            (
                validate.tool_name(tool),
                validate.route(route),
                store.destinations.check(validate.backend(backend)),
            )
            for tool, table in routes.items()
            for route, backend in table.items()
        ),
        key=lambda write: write[:2],
    )
    before = store.all_routes()
    changes: list[RouteChange] = []
    try:
        for tool, route, backend in checked:
            if dry_run:
                old = before.get(tool, {}).get(route)
                changes.append(RouteChange(tool, route, "set", old, backend.url, dry_run=True))
            else:
                changes.append(store.set_route(tool, route, backend, by))
    except RouteStoreError as exc:
        written = sum(change.changed for change in changes)
        raise RouteStoreError(
            f"import stopped after {len(changes)} of {len(checked)} routes ({written} written): {exc}"
        ) from None
    verify(store, changes)
    return Imported(changes, _recap(changes, before))


def _recap(changes: list[RouteChange], before: Routes) -> Recap:
    mentioned = {(change.tool, change.route) for change in changes}
    in_store = {(tool, route) for tool, table in before.items() for route in table}
    return Recap(
        added=sum(change.old is None for change in changes),
        changed=sum(change.changed and change.old is not None for change in changes),
        unchanged=sum(not change.changed for change in changes),
        kept=len(in_store - mentioned),
    )


# Private control flow: raised from inside json.loads (its object_pairs_hook) and caught in
# read_export, which turns it into a UsageError; it never leaves this module.
class _DuplicateKeyError(ToolforgectlError):
    """A JSON object named `key` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object that names each key once: json.loads would silently keep the last one."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKeyError(key)
        found[key] = value
    return found


def read_export(file: str) -> Routes:
    """The routes of an export file (or `-`: stdin), refused in one line unless well-formed."""
    raw = _read_bytes(file)
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as exc:
        raise UsageError(f"{file}: not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x})") from None
    except _DuplicateKeyError as exc:
        raise UsageError(f"{file}: key {validate.shown(exc.key)} appears twice in one object") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{file}:{exc.lineno}: not JSON: {exc.msg}") from None
    except RecursionError:
        raise UsageError(f"{file}: nested too deeply to be an export file") from None
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        raise UsageError(f"{file}: not usable JSON: {validate.shown(str(exc), 80)}") from None
    return _routes_of(file, data)


def _read_bytes(file: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise UsageError(f"{file}: cannot read: {exc.strerror}") from None


def _routes_of(file: str, data: object) -> Routes:
    """The routes table of a parsed export, checked to be {tool: {route: backend}} of strings."""
    expected = f'{{"format": "{EXPORT_FORMAT}", "routes": {{tool: {{route: backend}}}}}}'
    if not isinstance(data, dict) or set(data) != {"format", "routes"}:
        raise UsageError(f"{file}: expected {expected} as written by `routes export`")
    if data["format"] != EXPORT_FORMAT:
        found = validate.shown(data["format"])
        raise UsageError(f"{file}: unknown format {found}; this toolforgectl reads {EXPORT_FORMAT!r}")
    routes = data["routes"]
    if not isinstance(routes, dict) or not all(
        isinstance(table, dict) and all(isinstance(backend, str) for backend in table.values())
        for table in routes.values()
    ):
        raise UsageError(f"{file}: expected {expected} as written by `routes export`")
    return routes
