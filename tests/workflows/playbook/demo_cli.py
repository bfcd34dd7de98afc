"""`python -m tests.workflows.playbook.demo_cli [global options] demo-run NAME --dir DIR ...`: the
real toolforgectl entry point with the test-only steps registered and one more command that runs
a playbook of tests/workflows/playbook/playbooks/ through the same code `hiera set` uses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tests.workflows.playbook import demo_steps  # noqa: F401  (registers the demo steps)
from toolforgectl.cli.app import app, main
from toolforgectl.cli.context import JsonOpt, ReasonOpt, TaskIdOpt, settings
from toolforgectl.cli.operation import PlanDryRunOpt, ResumeOpt, YesOpt, run_playbook

PLAYBOOKS = Path(__file__).parent / "playbooks"


@app.command("demo-run")
def demo_run(
    ctx: typer.Context,
    name: str,
    directory: Annotated[str, typer.Option("--dir")],
    dry_run: PlanDryRunOpt = False,
    yes: YesOpt = False,
    resume: ResumeOpt = None,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a test playbook."""
    run_playbook(
        settings(ctx).fleet,
        name,
        {"dir": directory},
        command="demo-run",
        dry_run=dry_run,
        yes=yes,
        resume=resume,
        reason=reason,
        task_id=task_id,
        as_json=as_json,
        where=PLAYBOOKS,
    )


if __name__ == "__main__":
    main()
