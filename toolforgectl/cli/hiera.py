"""`toolforgectl hiera show [KEY]` and `hiera set KEY VALUE` (through the playbook engine)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolforgectl.cli.context import JsonOpt, ReasonOpt, TaskIdOpt, settings
from toolforgectl.cli.operation import PlanDryRunOpt, ResumeOpt, YesOpt, run_playbook
from toolforgectl.core import output

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    help="Read and change the fleet's hiera (the `hiera:` section of the config).", no_args_is_help=True
)


@app.command("show")
def show(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="One key; default: every key.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hiera's keys and values, or one key's (exit 1 when it is not there)."""
    from toolforgectl.workflows import hiera

    data = hiera.show(settings(ctx).fleet, key)

    def human(console: Console) -> None:
        values = {key: data["value"]} if key is not None else data["data"]
        rows = [
            (name, json.dumps(value) if not isinstance(value, str) else value)
            for name, value in values.items()
        ]
        output.table(console, ("key", "value"), rows, title=f"hiera: {data['where']}")

    output.emit("hiera show", data, as_json=as_json, human=human)


@app.command("set")
def set_key(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The key, e.g. profile::toolforge::active_proxy_host.")],
    value: Annotated[str, typer.Argument(help="Its new value (a string; YAML with --yaml).")],
    as_yaml: Annotated[
        bool, typer.Option("--yaml", help="Read VALUE as YAML (a number, list, ...).")
    ] = False,
    dry_run: PlanDryRunOpt = False,
    yes: YesOpt = False,
    resume: ResumeOpt = None,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set KEY to VALUE: plan with the diff, confirmation, lock, audit; refused if KEY changed meanwhile."""
    run_playbook(
        settings(ctx).fleet,
        "hiera-set",
        {"key": key, "value": _value(value, as_yaml)},
        command="hiera set",
        dry_run=dry_run,
        yes=yes,
        resume=resume,
        reason=reason,
        task_id=task_id,
        as_json=as_json,
    )


def _value(text: str, as_yaml: bool) -> Any:
    if not as_yaml:
        return text
    import yaml

    from toolforgectl.core.errors import ValidationError

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(f"VALUE is not YAML: {getattr(exc, 'problem', exc)}") from None
