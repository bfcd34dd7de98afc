"""`toolforgectl block`: the data plane's block lists (client networks, User-Agent and Referer regexes).

Each command calls one function of workflows/blocks.py; writes are audited, verified and take
`--dry-run`, as route writes do.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from toolforgectl.cli.context import DryRunOpt, JsonOpt, ReasonOpt, TaskIdOpt, settings
from toolforgectl.core import output
from toolforgectl.workflows import attribution, blocks

if TYPE_CHECKING:
    from rich.console import Console

    from toolforgectl.core.models import BlockChange

app = typer.Typer(
    help="List, add and remove block list entries (toolforgectl:block:<kind> in Redis): requests from a"
    " blocked network, or whose User-Agent or Referer matches a blocked regex, get a 403.",
    no_args_is_help=True,
)

KindArg = Annotated[
    str,
    typer.Argument(metavar="KIND", help="ip (an address or CIDR network), user-agent or referer (a regex)."),
]
ValueArg = Annotated[
    str,
    typer.Argument(
        metavar="VALUE",
        help="The address or network (203.0.113.9, 198.51.100.0/24), or the regex"
        " (unanchored, case-sensitive).",
    ),
]


@app.command("list")
def list_blocks(
    ctx: typer.Context,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only this kind: ip, user-agent or referer.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every block list entry, with who added it, when and why."""
    entries = blocks.list_blocks(settings(ctx).store(), kind)

    def human(console: Console) -> None:
        rows = [
            (
                block.kind,
                output.plain(block.entry),
                _when(block.time),
                block.actor,
                block.task_id,
                block.reason,
            )
            for block in entries
        ]
        output.table(console, ("kind", "entry", "added", "by", "task", "reason"), rows)
        console.print(f"{len(entries)} entries", style="dim")

    output.emit("block list", [block.as_dict() for block in entries], as_json=as_json, human=human)


@app.command("add")
def add(
    ctx: typer.Context,
    kind: KindArg,
    value: ValueArg,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Block a network or a header regex; live on the proxies without a reload."""
    by = attribution.operator(reason, task_id)
    change = blocks.add(settings(ctx).store(), kind, value, by, dry_run=dry_run)
    _report("block add", change, as_json=as_json)


@app.command("remove")
def remove(
    ctx: typer.Context,
    kind: KindArg,
    value: ValueArg,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Unblock a network or a header regex (exit 1 if it was not blocked)."""
    by = attribution.operator(reason, task_id)
    change = blocks.remove(settings(ctx).store(), kind, value, by, dry_run=dry_run)
    _report("block remove", change, as_json=as_json)


def _report(command: str, change: BlockChange, *, as_json: bool) -> None:
    def human(console: Console) -> None:
        where = f"{change.kind} {change.entry!r}"
        if not change.changed:
            line = f"unchanged: {where} ({'blocked' if change.after else 'not blocked'})"
        else:
            line = f"{'would' if change.dry_run else 'did'} {change.action}: {where}"
        console.print(line, markup=False, highlight=False)

    output.emit(command, [change.as_dict()], as_json=as_json, human=human)


def _when(seconds: float) -> str:
    if not seconds:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
