"""The one printer: data to stdout (a rich rendering or a stable JSON envelope), the rest to stderr.

Every `--json` answer has the same envelope, pinned by tests/test_output.py:

    {"command": "routes show", "ok": true, "data": ...}
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from toolforgectl.core.models import RouteChange

ENVELOPE_KEYS = ("command", "ok", "data")

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def emit(command: str, data: Any, *, as_json: bool, human: Callable[[Console], None]) -> None:
    """Print `data` as the JSON envelope, or let `human` render it for a person."""
    if as_json:
        sys.stdout.write(json.dumps({"command": command, "ok": True, "data": data}, indent=2) + "\n")
    else:
        human(stdout)


def plain(value: object) -> Text:
    """A table cell holding stored data: never interpreted as rich markup (routes contain `[`)."""
    return Text(str(value))


def progress(message: str) -> None:
    """A progress or log line for a person: always stderr, never mixed into data."""
    stderr.print(message, markup=False, highlight=False)


def error_line(message: str) -> None:
    """The one line an error gets."""
    print(f"toolforgectl: error: {message}", file=sys.stderr)


def describe_change(change: RouteChange) -> str:
    """One line saying what a write did, or would do on a dry run."""
    verb = "would" if change.dry_run else "did"
    where = f"{change.tool} {change.route!r}"
    if not change.changed:
        state = change.new if change.new is not None else "absent"
        return f"unchanged: {where} ({state})"
    if change.action == "set":
        before = f" (was {change.old})" if change.old else ""
        return f"{verb} set: {where} -> {change.new}{before}"
    return f"{verb} delete: {where} (was {change.old})"


def changes(command: str, items: list[RouteChange], *, as_json: bool) -> None:
    """Report the changes a write made (or would make)."""

    def human(console: Console) -> None:
        if not items:
            console.print("nothing to change", markup=False)
        for item in items:
            console.print(describe_change(item), markup=False, highlight=False)

    emit(command, [item.as_dict() for item in items], as_json=as_json, human=human)
