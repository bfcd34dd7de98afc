"""`toolforgectl lint`: render, `nginx -t`, start once, luacheck, YAML checks; the first problem fails it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolforgectl.cli.context import JsonOpt
from toolforgectl.core import output

if TYPE_CHECKING:
    from rich.console import Console

DirOption = Annotated[Path | None, typer.Option(help="Lint this directory instead of the installed one.")]


def lint(
    templates: DirOption = None,
    lua: DirOption = None,
    playbooks: DirOption = None,
    sample: Annotated[
        list[Path] | None,
        typer.Option(
            "--sample", help="A fleet config to render (repeatable; default: templates/samples/*.yaml)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check templates/, lua/, playbooks/ and sample configs as CI does; exit 1 with file:line."""
    from toolforgectl.workflows import lint as lint_workflow  # jinja2, yaml: loaded when it runs

    sources = lint_workflow.Sources.default()
    if templates:
        templates = templates.resolve()
        sources = replace(sources, templates=templates, samples=lint_workflow.samples_in(templates))
    sources = replace(
        sources,
        lua=(lua or sources.lua).resolve(),
        playbooks=(playbooks or sources.playbooks).resolve(),
        samples=tuple(p.resolve() for p in sample) if sample else sources.samples,
    )
    passed = lint_workflow.run(sources, progress=output.progress)

    def human(console: Console) -> None:
        console.print(f"lint: ok ({', '.join(passed)})", markup=False)

    output.emit("lint", {"passed": passed}, as_json=as_json, human=human)
