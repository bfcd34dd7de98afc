"""`toolforgectl debug`: look inside the route store's Redis, and a tool's route history."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolforgectl.cli.context import JsonOpt, settings
from toolforgectl.core import output

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
    """A tool's route changes: the audit record (who, why, which task), and HSET/HDEL from the AOF.

    Answers "who changed TOOL, and why?". The audit record lives in Redis and is always shown; the
    AOF (replaces `grep -C 5 <tool> /var/lib/redis/*.aof`) also shows writes by clients that keep
    no record, and is read when it is at hand: Redis 7's multi-part appendonlydir through its
    manifest, or a single-file AOF. Exits 1 if the tool has no routes and no history.
    """
    from toolforgectl.workflows import history as history_workflow  # redis: loaded when it runs

    found = history_workflow.of_tool(settings(ctx).store(), tool, aof_path)

    def human(console: Console) -> None:
        trail = [
            (_when(e.time), e.action, e.route, e.backend, e.actor, e.reason, e.task_id) for e in found.audit
        ]
        headers = ("time", "action", "route", "backend", "by", "reason", "task")
        output.table(console, headers, trail, title="audit record")
        if found.aof is None:
            output.progress(str(found.aof_note))
            return
        changes = [(_when(cmd.time), " ".join(cmd.args)) for cmd in found.changes]
        title = f"AOF history of prefix:{tool} ({found.aof})"
        output.table(console, ("time", "command"), changes, title=title)

    output.emit("debug history", found.as_dict(), as_json=as_json, human=human)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
