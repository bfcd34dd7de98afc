"""`toolforgectl debug`: look inside the route store's Redis, and a tool's route history."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from toolforgectl.adapters.routestore import prefix_key
from toolforgectl.cli.context import JsonOpt, settings
from toolforgectl.core import output
from toolforgectl.workflows import history as history_workflow
from toolforgectl.workflows import redisinfo

app = typer.Typer(
    help="Inspect Redis replication and persistence, and a tool's route history.", no_args_is_help=True
)


@app.command("redis")
def redis_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Replication role, link status, offsets, AOF status and key counts of the route store."""
    data = redisinfo.status(settings(ctx).store())

    def human(console: Console) -> None:
        table = Table("what", "value", show_header=False)
        for section, values in data.items():
            for name, value in values.items():
                table.add_row(f"{section}.{name}", output.plain(value))
        console.print(table)

    output.emit("debug redis", data, as_json=as_json, human=human)


@app.command("history")
def history(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="The tool whose route changes to show.")],
    aof_path: Annotated[
        Path | None,
        typer.Option(
            "--aof",
            help="AOF file or appendonlydir to read (default: asked from the running Redis).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A tool's route changes: the audit record (who, why, which task), and HSET/HDEL from the AOF.

    Answers "who changed TOOL, and why?". The audit record lives in Redis and is always shown; the
    AOF (replaces `grep -C 5 <tool> /var/lib/redis/*.aof`) also shows writes by clients that keep
    no record, and is read when it is at hand: Redis 7's multi-part appendonlydir through its
    manifest, or a single-file AOF. Exits 1 if the tool has no routes and no history.
    """
    found = history_workflow.of_tool(settings(ctx).store(), tool, aof_path)

    def human(console: Console) -> None:
        trail = Table("time", "action", "route", "backend", "by", "reason", "task", title="audit record")
        for entry in found.audit:
            cells = (entry.route, entry.backend, entry.actor, entry.reason, entry.task_id)
            trail.add_row(_when(entry.time), entry.action, *map(output.plain, cells))
        console.print(trail)
        if found.aof is None:
            output.progress(str(found.aof_note))
            return
        table = Table("time", "command", title=f"AOF history of {prefix_key(tool)} ({found.aof})")
        for cmd in found.changes:
            table.add_row(_when(cmd.time), output.plain(" ".join(cmd.args)))
        console.print(table)

    output.emit("debug history", found.as_dict(), as_json=as_json, human=human)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
