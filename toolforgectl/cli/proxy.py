"""`toolforgectl proxy list|show`: each proxy's role, Redis replication, and whether the sources agree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from toolforgectl.cli.context import JsonOpt, ReasonOpt, TaskIdOpt, settings
from toolforgectl.cli.operation import PlanDryRunOpt, ResumeOpt, YesOpt, run_playbook
from toolforgectl.core import output

if TYPE_CHECKING:
    from rich.console import Console

    from toolforgectl.workflows.proxies import ProxyState, Survey

app = typer.Typer(help="The fleet's proxies: role, Redis replication, agreement.", no_args_is_help=True)

HEADERS = ("proxy", "role", "address", "redis", "link", "lag", "active-proxy file", "floating IP", "agrees")


@app.command("list")
def list_proxies(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every proxy: active or standby, its Redis role, link and offset lag, and whether hiera, the
    active-proxy files and the Redis roles agree on it (the floating IP shows '-' for now)."""
    from toolforgectl.workflows import proxies  # redis, yaml: loaded when it runs

    found = proxies.survey(settings(ctx).fleet)
    output.emit("proxy list", found.as_dict(), as_json=as_json, human=lambda out: print_survey(out, found))


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The proxy's name in the fleet config.")],
    as_json: JsonOpt = False,
) -> None:
    """One proxy in detail: its active-proxy file, Redis role, primary, link, offset and lag."""
    from dataclasses import asdict

    from toolforgectl.workflows import proxies

    fleet = settings(ctx).fleet
    fleet.proxy(name)  # an unknown name is a config error naming the known ones
    found = proxies.survey(fleet)
    state = found.proxy(name)

    def human(out: Console) -> None:
        output.table(out, ("what", "value"), _details(state))
        print_agreement(out, found)

    data = {**asdict(state), "hiera": asdict(found.hiera), "disagreements": found.disagreements}
    output.emit("proxy show", data, as_json=as_json, human=human)


@app.command("remove")
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The proxy to remove (a standby: fail over first).")],
    dry_run: PlanDryRunOpt = False,
    yes: YesOpt = False,
    resume: ResumeOpt = None,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take a standby out of hiera and the fleet, converge its peers, delete its server.

    Refuses the active proxy; the reverse of `deploy proxy`, with the same plan, lock, audit and
    rollback (docs/runbooks/deploy.md)."""
    fleet = settings(ctx).fleet
    args = {"name": fleet.proxy(name).name} if not resume else {"name": name}
    run_playbook(
        fleet, "proxy-remove", args, command="proxy remove", dry_run=dry_run, yes=yes, resume=resume,
        reason=reason, task_id=task_id, as_json=as_json,
    )  # fmt: skip


def print_survey(out: Console, found: Survey) -> None:
    """The proxy table, then what hiera says and what disagrees (also `lab status`)."""
    output.table(out, HEADERS, [_row(state) for state in found.proxies])
    print_agreement(out, found)


def _row(state: ProxyState) -> tuple[object, ...]:
    file = state.active_proxy_file
    lag = "-" if state.lag is None else str(state.lag)
    redis = state.redis_role + (f" of {state.replicates_from}" if state.replicates_from else "")
    agrees = output.styled("yes", "green") if state.agrees else output.styled("NO", "red")
    return (state.name, state.role, state.address, redis, state.link or "-", lag,
            file.names or f"({file.problem})", state.floating_ip, agrees)  # fmt: skip


def _details(state: ProxyState) -> list[tuple[str, object]]:
    file = state.active_proxy_file
    return [
        ("proxy", state.name),
        ("role", state.role),
        ("address", state.address),
        ("redis", state.redis),
        (
            "redis role",
            state.redis_role if not state.redis_problem else f"unreachable: {state.redis_problem}",
        ),
        ("replicates from", state.replicates_from or "-"),
        ("link", state.link or "-"),
        ("offset", "-" if state.offset is None else state.offset),
        ("lag", "-" if state.lag is None else state.lag),
        ("active-proxy file", file.where),
        ("which names", file.names or f"({file.problem})"),
        ("floating IP", state.floating_ip),
        ("agrees", "yes" if state.agrees else "NO"),
    ]


def print_agreement(out: Console, found: Survey) -> None:
    """What hiera says, and every disagreement (or that there is none)."""
    hiera = found.hiera.names or f"({found.hiera.problem})"
    out.print(f"hiera: {hiera}  [{found.hiera.where}]", markup=False, highlight=False)
    if found.agree:
        out.print(f"all sources agree: {found.active} is active", markup=False, highlight=False)
    for problem in found.disagreements:
        out.print(f"DISAGREE: {problem}", markup=False, highlight=False)
