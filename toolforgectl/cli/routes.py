"""`toolforgectl routes`: read and change the routes of tools in the route store.

Each command calls one function of workflows/routes.py; the route store (and redis) loads only
when a command asks `settings(ctx).store()` for it, so `--help` and TAB completion stay fast.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolforgectl.cli.context import DryRunOpt, JsonOpt, ReasonOpt, TaskIdOpt, settings
from toolforgectl.core import output, validate
from toolforgectl.workflows import attribution, routes

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    help="Show, set, delete, export and import tool routes (prefix:<tool> in Redis).",
    no_args_is_help=True,
)

RouteOpt = Annotated[
    str, typer.Option("--route", help="Route regex, matched against the path after /<tool>.")
]


@app.command("list")
def list_routes(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every tool with its routes (uses SCAN, safe on a busy Redis)."""
    data = settings(ctx).store().all_routes()

    def human(console: Console) -> None:
        rows = [
            (tool, route, backend) for tool, table in data.items() for route, backend in sorted(table.items())
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
    """One tool's routes, whether each backend accepts a TCP connection right now, and its redirects.

    Redirects are what registerCanonical recorded (redirect:<tool>). Exits 1 if the tool has neither.
    """
    data = routes.show(settings(ctx).store(), tool, timeout if probe_backends else None)

    def human(console: Console) -> None:
        cells = [
            (
                row["route"],
                row["backend"],
                _reachable(row),
                f"{row['connect_ms']} ms" if row["connect_ms"] is not None else "-",
            )
            for row in data["routes"]
        ]
        output.table(console, ("route", "backend", "reachable", "connect"), cells, title=f"routes of {tool}")
        if data["redirects"]:
            rows = list(data["redirects"].items())
            output.table(console, ("route", "canonical host"), rows, title=f"redirects of {tool}")

    output.emit("routes show", data, as_json=as_json, human=human)


def _reachable(row: dict[str, Any]) -> object:
    if row["reachable"] is None:
        return "not probed"
    if row["reachable"]:
        return output.styled("yes", "green")
    return output.styled(f"no ({row['error']})", "red")


@app.command("set")
def set_route(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="The tool whose prefix /<tool>/ is routed.")],
    backend: Annotated[str, typer.Argument(help="Backend URL: http[s]://<ip or host name>:<port>.")],
    route: RouteOpt = ".*",
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Point a tool's route at a backend (the route defaults to `.*`); "unchanged" if it already does."""
    by = attribution.operator(reason, task_id)
    change = routes.set_route(
        settings(ctx).store(), tool, route, validate.backend(backend), by, dry_run=dry_run
    )
    output.changes("routes set", [change], as_json=as_json)


@app.command("delete")
def delete(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="The tool.")],
    route: Annotated[
        str | None,
        typer.Option("--route", help="Delete only this route (default: every route of the tool)."),
    ] = None,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete one route of a tool, or all of them."""
    by = attribution.operator(reason, task_id)
    changes = routes.delete(settings(ctx).store(), tool, route, by, dry_run=dry_run)
    output.changes("routes delete", changes, as_json=as_json)


@app.command("export")
def export(ctx: typer.Context) -> None:
    """Write every route and redirect as JSON to stdout (the input format of `routes import`)."""
    sys.stdout.write(json.dumps(routes.export(settings(ctx).store()), indent=2, sort_keys=True) + "\n")


@app.command("import")
def import_routes(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="A file written by `routes export`, or - for stdin.")],
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write every route and redirect of an export file; all are validated before any is written.

    Those already so are not written again; those the store has and the file does not are kept.
    Prints what changes, then a recap: added, changed, unchanged, kept.
    """
    by = attribution.operator(reason, task_id)
    data = routes.read_export(file)
    store = settings(ctx).store()
    done = routes.import_routes(store, data.routes, by, dry_run=dry_run, redirects=data.redirects)
    recap = done.recap

    def human(console: Console) -> None:
        for change in done.changes:
            if change.changed:
                console.print(output.describe_change(change), markup=False, highlight=False)
        summary = (
            f"{recap.added} added, {recap.changed} changed, {recap.unchanged} unchanged, {recap.kept} kept"
        )
        console.print(summary + (" (dry run: nothing written)" if dry_run else ""), markup=False)

    envelope = {"changes": [change.as_dict() for change in done.changes], "recap": asdict(recap)}
    output.emit("routes import", envelope, as_json=as_json, human=human)
