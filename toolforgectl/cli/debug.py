"""`toolforgectl debug`: look inside the route store's Redis, and a tool's route history."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from toolforgectl.adapters import aof
from toolforgectl.adapters.routestore import prefix_key
from toolforgectl.cli.context import JsonOpt, settings
from toolforgectl.core import output, validate
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
    """A tool's route changes, in order: HSET/HDEL of prefix:TOOL from the AOF, plus the audit record.

    Replaces `grep -C 5 <tool> /var/lib/redis/*.aof`. Reads Redis 7's multi-part appendonlydir
    through its manifest, and single-file AOFs.
    """
    validate.tool_name(tool)
    store = settings(ctx).store()
    path, filename = (aof_path, "appendonly.aof") if aof_path else redisinfo.aof_location(store)
    commands = aof.key_history(aof.files_in_order(path, filename), prefix_key(tool))
    audit = store.audit(tool) if aof_path is None else []
    data: dict[str, Any] = {
        "tool": tool,
        "aof": str(path),
        "changes": [c.as_dict() for c in commands],
        "audit": [a.as_dict() for a in audit],
    }

    def human(console: Console) -> None:
        table = Table("time", "command", title=f"AOF history of prefix:{tool} ({path})")
        for cmd in commands:
            when = _when(cmd.time)
            table.add_row(when, output.plain(" ".join(cmd.args)))
        console.print(table)
        if audit:
            trail = Table("time", "action", "route", "backend", "by", title="audit record")
            for entry in audit:
                trail.add_row(
                    _when(entry.time),
                    entry.action,
                    *map(output.plain, (entry.route, entry.backend, entry.actor)),
                )
            console.print(trail)

    output.emit("debug history", data, as_json=as_json, human=human)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
