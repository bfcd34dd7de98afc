"""What `toolforgectl routes` does: show, set and delete with verify-after-write, export and import.

Every write re-reads the store afterwards: the store must say what we wrote, or the command fails
(exit 1) naming the route that differs. The export file is JSON:

    {"format": "toolforgectl-routes/2", "routes": {"<tool>": {"<route>": "<backend>"}},
     "redirects": {"<tool>": {"<route>": "<canonical host>"}}}

(`redirects` holds `redirect:<tool>`, what registerCanonical records), and `import` reads only that,
or `toolforgectl-routes/1` (the same without `redirects`): an unknown `format`, a duplicate key,
input that is not UTF-8 or nested past what the parser takes is refused in one line (exit 2) before
anything is written. Every route and redirect is validated before the first write; a store failing
part-way says how far it got.
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
from toolforgectl.core.errors import (
    NotFoundError,
    RouteLimitError,
    RouteStoreError,
    ToolforgectlError,
    UsageError,
)
from toolforgectl.core.models import Attribution, Backend, RouteChange

if TYPE_CHECKING:  # the caller passes a store in: the CLI's --help never loads redis
    from toolforgectl.adapters.routestore import RouteStore

EXPORT_FORMAT = "toolforgectl-routes/2"
# What import reads: the current format, and the one before redirects were exported.
READABLE_FORMATS = ("toolforgectl-routes/1", EXPORT_FORMAT)

Routes = dict[str, dict[str, str]]


@dataclass(frozen=True)
class Export:
    """The content of an export file: tool -> route -> backend, and tool -> route -> canonical host."""

    routes: Routes
    redirects: Routes


def show(store: RouteStore, tool: str, timeout: float | None) -> dict[str, Any]:
    """`tool`'s routes, each TCP-probed within `timeout` (None: not probed), and its redirects."""
    routes, redirects = store.routes(tool), store.redirects(tool)
    if not routes and not redirects:
        raise NotFoundError(f"tool {tool!r} has no routes in {store.url}")
    rows = [_row(route, backend, timeout) for route, backend in sorted(routes.items())]
    return {"tool": tool, "routes": rows, "redirects": dict(sorted(redirects.items()))}


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
        mine = [change for change in written if change.tool == tool]
        now = store.routes(tool)
        redirects = store.redirects(tool) if any(c.action == "redirect" for c in mine) else {}
        for change in mine:
            table, what = (redirects, "redirect ") if change.action == "redirect" else (now, "")
            if table.get(change.route) != change.new:
                found, expected = table.get(change.route), change.new
                raise ToolforgectlError(
                    f"verify failed: {tool} {what}{change.route!r} is {found!r}, expected {expected!r}"
                )


# Export and import ---------------------------------------------------------------------------


def export(store: RouteStore) -> dict[str, Any]:
    """Every route and redirect, in the export format."""
    return {"format": EXPORT_FORMAT, "routes": store.all_routes(), "redirects": store.all_redirects()}


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


def import_routes(
    store: RouteStore, routes: Routes, by: Attribution, *, dry_run: bool, redirects: Routes | None = None
) -> Imported:
    """Write every route of `routes`, then every redirect of `redirects` (all validated first), then verify.

    Routes and redirects the store has and the file does not are kept. One already so is not written.
    A tool that would end with more routes than the store's `max_routes` is refused before anything
    is written.
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
    canonical = sorted(
        (validate.tool_name(tool), validate.route(route), validate.domain_name(host))
        for tool, table in (redirects or {}).items()
        for route, host in table.items()
    )
    before, before_redirects = store.all_routes(), store.all_redirects()
    _check_room(routes, before, store.max_routes)
    changes: list[RouteChange] = []
    total = len(checked) + len(canonical)
    try:
        for tool, route, backend in checked:
            if dry_run:
                old = before.get(tool, {}).get(route)
                changes.append(RouteChange(tool, route, "set", old, backend.url, dry_run=True))
            else:
                changes.append(store.set_route(tool, route, backend, by))
        for tool, route, host in canonical:
            changes.append(store.set_redirect(tool, route, host, by, dry_run=dry_run))
    except RouteStoreError as exc:
        written = sum(change.changed for change in changes)
        raise RouteStoreError(
            f"import stopped after {len(changes)} of {total} routes ({written} written): {exc}"
        ) from None
    verify(store, changes)
    return Imported(changes, _recap(changes, before, before_redirects))


def _check_room(routes: Routes, before: Routes, max_routes: int) -> None:
    """Refuse an import that would give a tool more than `max_routes` routes (its own and the file's)."""
    for tool, table in sorted(routes.items()):
        count = len(before.get(tool, {}).keys() | table.keys())
        if count > max_routes:
            raise RouteLimitError(
                f"tool {tool} would have {count} routes, more than the {max_routes} one tool may have"
                " (dataplane.max_routes_per_tool); nothing was imported"
            )


def _recap(changes: list[RouteChange], before: Routes, before_redirects: Routes) -> Recap:
    mentioned = {(change.action == "redirect", change.tool, change.route) for change in changes}
    in_store = {
        (is_redirect, tool, route)
        for is_redirect, tables in ((False, before), (True, before_redirects))
        for tool, table in tables.items()
        for route in table
    }
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


def read_export(file: str) -> Export:
    """The routes and redirects of an export file (or `-`: stdin), refused in one line unless well-formed."""
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
    return _export_of(file, data)


def _read_bytes(file: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise UsageError(f"{file}: cannot read: {exc.strerror}") from None


def _export_of(file: str, data: object) -> Export:
    """A parsed export, checked to hold {tool: {route: text}} tables under the keys its format has."""
    expected = (
        f'{{"format": "{EXPORT_FORMAT}", "routes": {{tool: {{route: backend}}}},'
        ' "redirects": {tool: {route: host}}}'
    )
    if not isinstance(data, dict) or "format" not in data:
        raise UsageError(f"{file}: expected {expected} as written by `routes export`")
    if data["format"] not in READABLE_FORMATS:
        found, known = validate.shown(data["format"]), " or ".join(map(repr, READABLE_FORMATS))
        raise UsageError(f"{file}: unknown format {found}; this toolforgectl reads {known}")
    keys = {"format", "routes"} | ({"redirects"} if data["format"] == EXPORT_FORMAT else set())
    if set(data) != keys or not all(_is_table(data[key]) for key in keys - {"format"}):
        raise UsageError(f"{file}: expected {expected} as written by `routes export`")
    return Export(data["routes"], data.get("redirects", {}))


def _is_table(value: object) -> bool:
    """Whether `value` is {tool: {route: text}}."""
    return isinstance(value, dict) and all(
        isinstance(table, dict) and all(isinstance(text, str) for text in table.values())
        for table in value.values()
    )
