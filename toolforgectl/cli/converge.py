"""`toolforgectl converge`: converge each host group through playbooks/converge.yaml, with a recap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from toolforgectl.cli.context import JsonOpt, ReasonOpt, TaskIdOpt, settings
from toolforgectl.cli.operation import PlanDryRunOpt, ResumeOpt, YesOpt, run_playbook
from toolforgectl.core import output

if TYPE_CHECKING:
    from rich.console import Console

    from toolforgectl.workflows.playbook.report import Report

STEP = "converge-hosts"
_STYLE = {"changed": "yellow", "unchanged": "green", "failed": "red", "skipped": "red"}


def converge(
    ctx: typer.Context,
    group: Annotated[
        str | None, typer.Option("--group", metavar="G", help="Only this group of remote.converge.")
    ] = None,
    limit: Annotated[
        str | None,
        typer.Option(
            "--limit", metavar="HOSTS", help="Only these hosts (comma-separated names or patterns: proxy-0*)."
        ),
    ] = None,
    batch: Annotated[
        int | None, typer.Option("--batch", metavar="N", min=1, help="Hosts at once (default remote.batch).")
    ] = None,
    dry_run: PlanDryRunOpt = False,
    yes: YesOpt = False,
    resume: ResumeOpt = None,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Converge each host group: run its command (the puppet agent), or push our rendered data plane
    and reload nginx only where `nginx -t` passes. A recap per host at the end; exit 1 if any failed.

    docs/remote.md says how a group is converged; docs/runbooks/deploy.md when."""
    from toolforgectl.workflows import converge as workflow

    fleet = settings(ctx).fleet
    hosts = [part.strip() for part in (limit or "").split(",") if part.strip()]
    workflow.targets(fleet, group, hosts)  # an unknown group, or a limit matching nothing: exit 2 now
    args = {"group": group or "", "limit": hosts, "batch": batch}
    run_playbook(
        fleet,
        "converge",
        args,
        command="converge",
        dry_run=dry_run,
        yes=yes,
        resume=resume,
        reason=reason,
        task_id=task_id,
        as_json=as_json,
        recap=print_recap,
    )


def print_recap(out: Console, report: Report) -> None:
    """Ansible's recap: each host's result (changed, unchanged, failed, skipped) and why, then the counts."""
    step = next((s for s in report.steps if s.step == STEP), None)
    if step is None or step.status in ("planned", "already done"):
        return
    rows = []
    counts = dict.fromkeys(_STYLE, 0)
    for change in step.changes:
        found = change.new if isinstance(change.new, dict) else {"result": str(change.new), "detail": ""}
        result = str(found.get("result", ""))
        counts[result] = counts.get(result, 0) + 1
        rows.append(
            (change.target, change.old, output.styled(result, _STYLE.get(result, "")), found["detail"])
        )
    summary = ", ".join(f"{result} {count}" for result, count in counts.items())
    output.table(out, ("host", "group", "result", "detail"), rows, title=f"converge recap: {summary}")
