"""The steps of `proxy remove` (playbooks/proxy-remove.yaml): the reverse of `deploy proxy`.

    not-the-active-proxy        preflight: refused while its Redis is the primary or hiera names
                                it (fail over first)
    remove-from-hiera-proxies   hiera's proxy list (compare-and-swap)
    unlist-proxy                its NAME.yaml in `proxies_dir` (the fleet forgets it)
    converge-peers              the peers' config no longer lists it (workflows/deploy.py)
    delete-proxy-server         the point of no return: its server (and so its place in the
                                server group) and any port left of it

A failure before the server is deleted rolls back: hiera and the fleet list it again, the peers
are converged with it again.
"""

from __future__ import annotations

from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core.errors import StepError, ToolforgectlError
from toolforgectl.workflows.deploy import (
    converge_proxies,
    current,
    hiera_proxies,
    name_of,
    proxies_dir,
    remove_from_hiera,
)
from toolforgectl.workflows.playbook import steps
from toolforgectl.workflows.playbook.context import StepContext
from toolforgectl.workflows.playbook.steps import Change, Check, Outcome


@steps.register("not-the-active-proxy")
class NotTheActiveProxy:
    """The proxy to remove is not the active one by any source (its Redis, hiera, any active-proxy file)."""

    def check(self, ctx: StepContext) -> Check:
        """Read its Redis role, hiera's active proxy and the survey's active proxy."""
        name = name_of(ctx)
        proxy = ctx.fleet.proxy(name)
        problems = []
        try:
            if RouteStore.from_url(proxy.redis).replication().is_primary:
                problems.append("its Redis is the primary")
        except ToolforgectlError:
            pass  # a dead proxy may be removed: its Redis answers nothing
        hiera = ctx.hiera().get(ctx.fleet.need_hiera().active_proxy_key)
        if hiera == name:
            problems.append(f"hiera {ctx.fleet.need_hiera().active_proxy_key} names it")
        if problems:
            return Check(False, note=f"{name} is the active proxy ({'; '.join(problems)}): fail over first")
        return Check.already(f"{name} is a standby")


@steps.register("remove-from-hiera-proxies")
class RemoveFromHieraProxies:
    """Hiera's proxy list no longer names the proxy (compare-and-swap)."""

    def check(self, ctx: StepContext) -> Check:
        """Read the list."""
        key, now = ctx.fleet.need_hiera().proxies_key, hiera_proxies(ctx)
        if name_of(ctx) not in now:
            return Check.already(f"hiera {key} does not list {name_of(ctx)}")
        return Check.would(Change(f"hiera {key}", now, [p for p in now if p != name_of(ctx)]))

    def apply(self, ctx: StepContext) -> Outcome:
        """Take it out."""
        remove_from_hiera(ctx)
        ctx.record(f"hiera {ctx.fleet.need_hiera().proxies_key}", name_of(ctx), "-")
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """Read it back."""
        if name_of(ctx) in hiera_proxies(ctx):
            raise StepError(f"hiera still lists {name_of(ctx)}")

    def rollback(self, ctx: StepContext) -> None:
        """Put it back, while the list does not hold it."""
        key, now = ctx.fleet.need_hiera().proxies_key, hiera_proxies(ctx)
        if name_of(ctx) not in now:
            ctx.hiera().set(
                key, [*now, name_of(ctx)], expect=now, message=f"{key}: back {name_of(ctx)} ({ctx.reason})"
            )


@steps.register("unlist-proxy")
class UnlistProxy:
    """The fleet config no longer lists the proxy (its NAME.yaml in `proxies_dir` is gone)."""

    def check(self, ctx: StepContext) -> Check:
        """Read its entry."""
        path = proxies_dir(ctx.fleet) / f"{name_of(ctx)}.yaml"
        if not path.exists():
            if any(proxy.name == name_of(ctx) for proxy in ctx.fleet.proxies):
                raise StepError(
                    f"{name_of(ctx)} is listed in {ctx.fleet.source}'s proxies:, not in {path.parent}:"
                    " remove it there"
                )
            return Check.already(f"the fleet does not list {name_of(ctx)}")
        return Check.would(Change(f"fleet entry {path}", path.read_text(encoding="utf-8"), "-"))

    def apply(self, ctx: StepContext) -> Outcome:
        """Delete the entry."""
        path = proxies_dir(ctx.fleet) / f"{name_of(ctx)}.yaml"
        ctx.record(f"fleet entry {path}", "listed", "-")
        path.unlink(missing_ok=True)
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """The fleet, read again, does not list it."""
        if any(proxy.name == name_of(ctx) for proxy in current(ctx).proxies):
            raise StepError(f"the fleet still lists {name_of(ctx)}")

    def rollback(self, ctx: StepContext) -> None:
        """Write the entry back as the plan read it, and converge the peers with it again."""
        path = proxies_dir(ctx.fleet) / f"{name_of(ctx)}.yaml"
        if ctx.planned and ctx.planned.changes and not path.exists():
            path.write_text(str(ctx.planned.changes[0].old), encoding="utf-8")
            converge_proxies(ctx, current(ctx))


@steps.register("delete-proxy-server")
class DeleteProxyServer:
    """The proxy's server is deleted (and with it its membership of the server group)."""

    def check(self, ctx: StepContext) -> Check:
        """Does Nova still have it?"""
        server = ctx.fleet.needs_cloud().server(name_of(ctx))
        status = ctx.cloud().server_status(server)
        if status is None:
            return Check.already(f"no server {server}")
        return Check.would(Change(f"server {server}", status, "deleted"))

    def apply(self, ctx: StepContext) -> Outcome:
        """Delete it, and any port left of it."""
        server = ctx.fleet.needs_cloud().server(name_of(ctx))
        ctx.cloud().delete_server(server)
        ctx.cloud().delete_ports_named(server)
        ctx.record(f"server {server}", "exists", "deleted")
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """Nova no longer has it."""
        server = ctx.fleet.needs_cloud().server(name_of(ctx))
        if ctx.cloud().server_status(server) is not None:
            raise StepError(f"server {server} is still there")

    def instructions(self, ctx: StepContext) -> str:
        """Delete it by hand."""
        server = ctx.fleet.needs_cloud().server(name_of(ctx))
        return f"the proxy is out of hiera and the fleet; delete its server: openstack server delete {server}"
