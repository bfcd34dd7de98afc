"""The one printer: data to stdout (a rich rendering or a stable JSON envelope), the rest to stderr.

Every `--json` answer has the same envelope, pinned by tests/core/test_output.py:

    {"command": "routes show", "ok": true, "data": ...}
    {"command": "routes show", "ok": false, "error": {"kind": "not_found", "message": "..."}}

Every program of this package (the CLI, the daemons, the clients) ends on an error through
`fail`: one line `<program>: error: <message>` on stderr and a documented exit code.

rich is imported only when something is printed for a person, so that `--version`, shell
completion and the daemons do not pay for it at start-up.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

from toolforgectl.core.errors import EXIT_FAILED, ToolforgectlError
from toolforgectl.core.models import RouteChange

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

ENVELOPE_KEYS = ("command", "ok", "data")
ERROR_ENVELOPE_KEYS = ("command", "ok", "error")


@cache
def console(*, stderr: bool = False) -> Console:
    """The rich console for stdout (data) or stderr (progress); made on first use."""
    from rich.console import Console

    # soft_wrap: a long line is never broken or cropped to the console width.
    return Console(stderr=stderr, soft_wrap=True)


def emit(command: str, data: Any, *, as_json: bool, human: Callable[[Console], None]) -> None:
    """Print `data` as the JSON envelope, or let `human` render it for a person."""
    if as_json:
        _json_line({"command": command, "ok": True, "data": data})
    else:
        human(console())


def _json_line(envelope: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(envelope, indent=2) + "\n")
    sys.stdout.flush()


def plain(value: object) -> Text:
    """A table cell holding stored data: never interpreted as rich markup (routes contain `[`)."""
    from rich.text import Text

    return Text(str(value))


def styled(value: str, style: str) -> Text:
    """A table cell with a style (e.g. "green"), shown as plain text when stdout is not a terminal."""
    from rich.text import Text

    return Text(value, style=style)


def table(
    out: Console, headers: Sequence[str], rows: Iterable[Sequence[object]], *, title: str | None = None
) -> None:
    """Print `rows` under `headers`; no cell is ever cut short.

    On a terminal: a rich table whose long cells fold onto more lines. Otherwise (a pipe, a file):
    plain rows of columns separated by two spaces, as wide as their data, so `grep` and `awk`
    see every backend URL whole. Cells are data: `str` cells are never read as markup.
    """
    from rich.table import Table
    from rich.text import Text

    cells = [[cell if isinstance(cell, Text) else Text(str(cell)) for cell in row] for row in rows]
    if not out.is_terminal:
        _plain_table(out, headers, cells, title)
        return

    grid = Table(title=title)
    for header in headers:
        grid.add_column(header, overflow="fold")
    for row in cells:
        grid.add_row(*row)
    out.print(grid)


def _plain_table(out: Console, headers: Sequence[str], rows: list[list[Text]], title: str | None) -> None:
    texts = [list(headers), *([cell.plain for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in texts) for i in range(len(headers))]
    if title:
        out.print(title, markup=False, highlight=False)
    for row in texts:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.print(line.rstrip(), markup=False, highlight=False)


def progress(message: str) -> None:
    """A progress or log line for a person: always stderr, never mixed into data."""
    console(stderr=True).print(message, markup=False, highlight=False)


def error_kind(error: BaseException) -> str:
    """The `kind` an error has in the JSON envelope: its class in snake case, `NotFoundError` -> not_found."""
    if type(error) is ToolforgectlError or not isinstance(error, ToolforgectlError):
        return "failed"
    name = type(error).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def fail(
    program: str,
    error: BaseException | str,
    code: int | None = None,
    *,
    kind: str | None = None,
    json_command: str | None = None,
) -> NoReturn:
    """End an entry point on an error; the one way every program of this package does it.

    Prints one line, `<program>: error: <message>`, on stderr; with `json_command` (the command
    ran with `--json`) also the error envelope on stdout, so `jq` sees it. Exits with `code`,
    by default the error's own (ToolforgectlError.exit_code), else 1.
    """
    message = " ".join(str(error).strip().splitlines()) or type(error).__name__
    if code is None:
        code = error.exit_code if isinstance(error, ToolforgectlError) else EXIT_FAILED
    if json_command is not None:
        if kind is None:
            kind = error_kind(error) if isinstance(error, BaseException) else "failed"
        error_body = {"kind": kind, "message": message}
        _json_line({"command": json_command, "ok": False, "error": error_body})
    sys.stdout.flush()
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def describe_change(change: RouteChange) -> str:
    """One line saying what a write did, or would do on a dry run."""
    verb = "would" if change.dry_run else "did"
    where = f"{change.tool} {change.route!r}"
    if not change.changed:
        state = change.new if change.new is not None else "absent"
        return f"unchanged: {where} ({state})"
    if change.action in ("set", "redirect"):
        before = f" (was {change.old})" if change.old else ""
        return f"{verb} {change.action}: {where} -> {change.new}{before}"
    return f"{verb} delete: {where} (was {change.old})"


def changes(command: str, items: list[RouteChange], *, as_json: bool) -> None:
    """Report the changes a write made (or would make)."""

    def human(out: Console) -> None:
        if not items:
            out.print("nothing to change", markup=False)
        for item in items:
            out.print(describe_change(item), markup=False, highlight=False)

    emit(command, [item.as_dict() for item in items], as_json=as_json, human=human)
