"""`toolforgectl debug`: look inside the route store's Redis, and a tool's route history."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolforgectl.cli.context import JsonOpt, settings
from toolforgectl.core import output, validate

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    help="Inspect Redis replication and persistence, and a tool's route history.", no_args_is_help=True
)


@app.command("redis")
def redis_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Replication role, link status, offsets, AOF status and key counts of the route store."""
    from toolforgectl.workflows import redisinfo  # redis: loaded when the command runs

    data = redisinfo.status(settings(ctx).store())

    def human(console: Console) -> None:
        rows = [
            (f"{section}.{name}", value) for section, values in data.items() for name, value in values.items()
        ]
        output.table(console, ("what", "value"), rows)

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
    from toolforgectl.adapters import aof  # loaded when the command runs, not at start-up
    from toolforgectl.adapters.routestore import prefix_key
    from toolforgectl.workflows import redisinfo

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
        changes = [(_when(cmd.time), " ".join(cmd.args)) for cmd in commands]
        output.table(console, ("time", "command"), changes, title=f"AOF history of prefix:{tool} ({path})")
        if audit:
            trail = [(_when(e.time), e.action, e.route, e.backend, e.actor) for e in audit]
            output.table(console, ("time", "action", "route", "backend", "by"), trail, title="audit record")

    output.emit("debug history", data, as_json=as_json, human=human)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
