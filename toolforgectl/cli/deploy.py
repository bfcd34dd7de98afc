"""`toolforgectl deploy proxy`: a new proxy through playbooks/deploy-proxy.yaml."""

from __future__ import annotations

from typing import Annotated

import typer

from toolforgectl.cli.context import JsonOpt, ReasonOpt, TaskIdOpt, settings
from toolforgectl.cli.operation import PlanDryRunOpt, ResumeOpt, YesOpt, run_playbook
from toolforgectl.core.errors import UsageError

app = typer.Typer(help="Deploy fleet members.", no_args_is_help=True)


@app.command("proxy")
def proxy(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="The new proxy's name (default: the next free one: proxy-03).")
    ] = None,
    flavor: Annotated[
        str | None, typer.Option("--flavor", metavar="F", help="Nova flavor (default cloud.flavor).")
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", metavar="I", help="Image (default cloud.image).")
    ] = None,
    network: Annotated[
        str | None, typer.Option("--network", metavar="N", help="Neutron network (default cloud.network).")
    ] = None,
    dry_run: PlanDryRunOpt = False,
    yes: YesOpt = False,
    resume: ResumeOpt = None,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a proxy VM (no floating IP) from cloud-init user data rendered from templates/, list
    it in the fleet and in hiera, converge its peers, and verify that it replicates and serves.

    Idempotent for an existing healthy proxy; any failure rolls back (docs/runbooks/deploy.md)."""
    from toolforgectl.workflows import deploy, proxies
    from toolforgectl.workflows.playbook import state

    fleet = settings(ctx).fleet
    if resume:
        args = state.files_of(fleet.operations.runs(), resume).load().args
    else:
        cloud = fleet.needs_cloud()
        chosen = {
            "flavor": flavor or cloud.flavor,
            "image": image or cloud.image,
            "network": network or cloud.network,
        }
        missing = [f"--{key}" for key, value in chosen.items() if not value]
        if missing:
            raise UsageError(f"say {', '.join(missing)} (or set them in the cloud: section)")
        args = {"name": name or deploy.next_name(fleet), **chosen, "active": proxies.redis_primary(fleet)}
    run_playbook(
        fleet, "deploy-proxy", args, command="deploy proxy", dry_run=dry_run, yes=yes, resume=resume,
        reason=reason, task_id=task_id, as_json=as_json,
    )  # fmt: skip
