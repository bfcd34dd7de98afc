"""`toolforgectl playbooks list|show NAME`: the operations this toolkit can run, and their steps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from toolforgectl.cli.context import JsonOpt
from toolforgectl.core import output

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="List the playbooks (playbooks/*.yaml) and show their steps.", no_args_is_help=True)


@app.command("list")
def list_playbooks(as_json: JsonOpt = False) -> None:
    """Every playbook: its name, what it does, and how many steps it has."""
    from toolforgectl.workflows.playbook import spec

    books = [spec.load(path) for path in spec.paths()]
    data = [
        {"name": b.name, "description": b.description, "preflight": len(b.preflight), "steps": len(b.steps)}
        for b in books
    ]

    def human(console: Console) -> None:
        rows = [(b["name"], f"{b['preflight']} + {b['steps']}", b["description"]) for b in data]
        output.table(console, ("playbook", "checks + steps", "description"), rows)

    output.emit("playbooks list", data, as_json=as_json, human=human)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The playbook, e.g. hiera-set.")],
    as_json: JsonOpt = False,
) -> None:
    """One playbook's preflight checks and steps, in order, with their options."""
    from toolforgectl.workflows.playbook import spec

    book = spec.find(name)
    data = book.as_dict()

    def human(console: Console) -> None:
        console.print(f"{book.name}: {book.description}", markup=False, highlight=False)
        console.print(f"file: {book.path}   lock: {book.lock}", markup=False, highlight=False)
        for argument, meaning in book.arguments.items():
            console.print(f"argument {argument}: {meaning}", markup=False, highlight=False)
        rows = [
            (
                f"{'preflight' if entry in book.preflight else index}",
                entry.id,
                entry.kind.summary,
                _settings(entry),
            )
            for index, entry in enumerate([*book.preflight, *book.steps], start=1 - len(book.preflight))
        ]
        output.table(console, ("#", "step", "what it does", "settings"), rows)

    output.emit("playbooks show", data, as_json=as_json, human=human)


def _settings(entry: object) -> str:
    from toolforgectl.workflows.playbook.spec import Entry

    assert isinstance(entry, Entry)
    found = [
        f"retries={entry.retries} delay={entry.delay:g}s backoff={entry.backoff:g}",
        f"timeout={entry.timeout:g}s",
    ]
    if entry.hosts:
        found.append(f"hosts={entry.hosts}")
    if entry.batch:
        found.append(f"batch={entry.batch}")
    if entry.point_of_no_return:
        found.append("POINT OF NO RETURN")
    if entry.skip_on_resume:
        found.append("skipped on resume")
    options = entry.as_dict()["options"]
    found.extend(f"{key}={value}" for key, value in options.items())
    return " ".join(found)
