"""`toolforgectl routes`: read and change the routes of tools in the route store."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolforgectl.adapters import probe
from toolforgectl.cli.context import DryRunOpt, JsonOpt, settings
from toolforgectl.core import output
from toolforgectl.core.errors import NotFoundError, ToolforgectlError, UsageError

if TYPE_CHECKING:  # imported when a command runs (settings().store()), not at start-up
    from rich.console import Console

    from toolforgectl.adapters.routestore import RouteStore
    from toolforgectl.core.models import RouteChange

app = typer.Typer(
    help="Show, set, delete, export and import tool routes (prefix:<tool> in Redis).",
    no_args_is_help=True,
)

EXPORT_FORMAT = "toolforgectl-routes/1"
ACTOR = "toolforgectl"

RouteOpt = Annotated[
    str, typer.Option("--route", help="Route regex, matched against the path after /<tool>.")
]


@app.command("list")
def list_routes(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every tool with its routes (uses SCAN, safe on a busy Redis)."""
    data = settings(ctx).store().all_routes()

    def human(console: Console) -> None:
        rows = [
            (tool, route, backend)
            for tool, routes in data.items()
            for route, backend in sorted(routes.items())
        ]
        output.table(console, ("tool", "route", "backend"), rows)
        console.print(f"{len(data)} tools", style="dim")

    output.emit("routes list", data, as_json=as_json, human=human)


@app.command("show")
def show(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="The tool, e.g. dplbot.")],
    as_json: JsonOpt = False,
    timeout: Annotated[float, typer.Option(help="TCP connect timeout per backend, seconds.")] = 0.5,
    probe_backends: Annotated[
        bool, typer.Option("--probe/--no-probe", help="TCP-connect to each backend to see if it answers.")
    ] = True,
) -> None:
    """One tool's routes, and whether each backend accepts a TCP connection right now.

    Exits 1 if the tool has no routes.
    """
    store = settings(ctx).store()
    routes = store.routes(tool)
    if not routes:
        raise NotFoundError(f"tool {tool!r} has no routes in {store.url}")
    rows = [
        _row(route, backend, timeout if probe_backends else None) for route, backend in sorted(routes.items())
    ]
    data = {"tool": tool, "routes": rows, "redirects": store.redirects(tool)}

    def human(console: Console) -> None:
        cells = [
            (
                row["route"],
                row["backend"],
                _reachable(row),
                f"{row['connect_ms']} ms" if row["connect_ms"] is not None else "-",
            )
            for row in rows
        ]
        output.table(console, ("route", "backend", "reachable", "connect"), cells, title=f"routes of {tool}")

    output.emit("routes show", data, as_json=as_json, human=human)


def _reachable(row: dict[str, Any]) -> object:
    if row["reachable"] is None:
        return "not probed"
    if row["reachable"]:
        return output.styled("yes", "green")
    return output.styled(f"no ({row['error']})", "red")


def _row(route: str, backend: str, timeout: float | None) -> dict[str, Any]:
    """A route's row; `reachable` is None when probing was skipped (timeout None)."""
    if timeout is None:
        return {"route": route, "backend": backend, "reachable": None, "connect_ms": None, "error": None}
    result = probe.tcp_connect(backend, timeout)
    return {
        "route": route,
        "backend": backend,
        "reachable": result.reachable,
        "connect_ms": result.connect_ms,
        "error": result.error,
    }


@app.command("set")
def set_route(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="The tool whose prefix /<tool>/ is routed.")],
    backend: Annotated[str, typer.Argument(help="Backend URL: http[s]://<ip>:<port>.")],
    route: RouteOpt = ".*",
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Point a tool's route at a backend (the route defaults to `.*`)."""
    store = settings(ctx).store()
    change = store.set_route(tool, route, backend, actor=ACTOR, dry_run=dry_run)
    _verify(store, [change])
    output.changes("routes set", [change], as_json=as_json)


@app.command("delete")
def delete(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="The tool.")],
    route: Annotated[
        str | None,
        typer.Option("--route", help="Delete only this route (default: every route of the tool)."),
    ] = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete one route of a tool, or all of them."""
    store = settings(ctx).store()
    if route is None:
        changes = store.delete_tool(tool, actor=ACTOR, dry_run=dry_run)
    else:
        changes = [store.delete_route(tool, route, actor=ACTOR, dry_run=dry_run)]
    if not any(change.old is not None for change in changes):
        raise NotFoundError(f"tool {tool!r} has no such route in {store.url}")
    _verify(store, changes)
    output.changes("routes delete", changes, as_json=as_json)


@app.command("export")
def export(ctx: typer.Context) -> None:
    """Write every route as JSON to stdout (the input format of `routes import`)."""
    data = {"format": EXPORT_FORMAT, "routes": settings(ctx).store().all_routes()}
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


@app.command("import")
def import_routes(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="A file written by `routes export`, or - for stdin.")],
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write every route of an export file; all are validated before any is written."""
    routes = _read_export(file)
    store = settings(ctx).store()
    changes = store.import_routes(routes, actor=ACTOR, dry_run=dry_run)
    _verify(store, changes)
    output.changes("routes import", changes, as_json=as_json)


def _read_export(file: str) -> dict[str, dict[str, str]]:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise UsageError(f"{file}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{file}:{exc.lineno}: not JSON: {exc.msg}") from None
    routes = data.get("routes") if isinstance(data, dict) and "format" in data else data
    if not isinstance(routes, dict) or not all(
        isinstance(r, dict) and all(isinstance(v, str) for v in r.values()) for r in routes.values()
    ):
        raise UsageError(f"{file}: expected {{tool: {{route: backend}}}} as written by `routes export`")
    return routes


def _verify(store: RouteStore, changes: list[RouteChange]) -> None:
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
