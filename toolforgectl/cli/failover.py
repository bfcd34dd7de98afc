"""`toolforgectl failover`: move the active proxy to the standby through playbooks/failover.yaml."""

from __future__ import annotations

from typing import Annotated

import typer

from toolforgectl.cli.context import JsonOpt, ReasonOpt, TaskIdOpt, settings
from toolforgectl.cli.operation import PlanDryRunOpt, ResumeOpt, YesOpt, run_playbook
from toolforgectl.core import output


def failover(
    ctx: typer.Context,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="PROXY", help="The proxy to make active (default: the standby)."),
    ] = None,
    temporary: Annotated[
        bool, typer.Option("--temporary", help="Move only the floating IP (to reboot the active proxy, say).")
    ] = False,
    rehearse: Annotated[
        bool,
        typer.Option(
            "--rehearse", help="A practice run: every check against the real fleet, nothing changes."
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Go on although hiera, the files, the floating IP or Redis disagree."),
    ] = False,
    dry_run: PlanDryRunOpt = False,
    yes: YesOpt = False,
    resume: ResumeOpt = None,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move the floating IP, the Redis primary, hiera and every active-proxy file to the standby.

    Checks first (every proxy up, every source agrees, the standby caught up and serving), then a
    plan, confirmation, a lock, an audit. docs/runbooks/failover.md explains each step."""
    from toolforgectl.workflows import failover as workflow
    from toolforgectl.workflows.playbook import state

    fleet = settings(ctx).fleet
    name = "failover-temporary" if temporary else "failover"
    if resume:
        args = state.files_of(fleet.operations.runs(), resume).load().args
    else:
        current, target = workflow.starting_point(fleet, to, temporary=temporary)
        if current == target:
            output.progress(f"failover: {target} is the active proxy already; nothing to do")
            data = {"result": "nothing to do", "active": target}
            output.emit("failover", data, as_json=as_json, human=lambda _console: None)
            return
        args = {"from": current, "to": target, "force": force}
    run_playbook(
        fleet,
        name,
        args,
        command="failover",
        dry_run=dry_run or rehearse,
        yes=yes,
        resume=resume,
        reason=reason,
        task_id=task_id,
        as_json=as_json,
    )
