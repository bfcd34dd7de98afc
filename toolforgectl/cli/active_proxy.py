"""`toolforgectl active-proxy show`: what hiera, every active-proxy file and the Redis roles say."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from toolforgectl.cli.context import JsonOpt, ReasonOpt, TaskIdOpt, settings
from toolforgectl.cli.operation import PlanDryRunOpt, ResumeOpt, YesOpt, run_playbook
from toolforgectl.cli.proxy import print_agreement
from toolforgectl.core import output

if TYPE_CHECKING:
    from rich.console import Console

    from toolforgectl.workflows.proxies import Survey

app = typer.Typer(help="Which proxy is active, by every source.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Hiera, every proxy's active-proxy file, the floating IP and the Redis roles, side by side.

    Exits 1 when they disagree (a split brain, a failover half done), naming what disagrees."""
    from toolforgectl.workflows import proxies  # redis, yaml: loaded when it runs

    found = proxies.survey(settings(ctx).fleet)
    output.emit("active-proxy show", found.as_dict(), as_json=as_json, human=lambda out: _print(out, found))
    if not found.agree:
        output.progress(f"active-proxy: {len(found.disagreements)} source(s) disagree with {found.active}")
        raise typer.Exit(1)


@app.command("set")
def set_proxy(
    ctx: typer.Context,
    proxy: Annotated[
        str, typer.Argument(help="The proxy that hiera and every active-proxy file are to name.")
    ],
    dry_run: PlanDryRunOpt = False,
    yes: YesOpt = False,
    resume: ResumeOpt = None,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make hiera and every active-proxy file name PROXY, nothing else (no floating IP, no Redis).

    For repairing a split brain or staging a change without a full failover; through the same engine
    as a failover (plan, --dry-run, confirmation, lock, --reason, audit)."""
    fleet = settings(ctx).fleet
    run_playbook(
        fleet,
        "active-proxy-set",
        {"to": fleet.proxy(proxy).name},
        command="active-proxy set",
        dry_run=dry_run,
        yes=yes,
        resume=resume,
        reason=reason,
        task_id=task_id,
        as_json=as_json,
    )


def _print(out: Console, found: Survey) -> None:
    rows: list[tuple[str, str, object]] = [
        ("hiera", found.hiera.where, found.hiera.names or f"({found.hiera.problem})"),
        ("fleet config", "active_proxy", found.fleet_config),
        ("floating IP", "-", found.floating_ip),
    ]
    for state in found.proxies:
        file = state.active_proxy_file
        rows.append(("active-proxy file", file.where, file.names or f"({file.problem})"))
    for state in found.proxies:
        role = state.redis_role + (f" of {state.replicates_from}" if state.replicates_from else "")
        rows.append(("redis role", state.name, role))
    output.table(out, ("source", "where", "says"), rows)
    print_agreement(out, found)
