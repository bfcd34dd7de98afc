"""The steps of `deploy proxy` (playbooks/deploy-proxy.yaml), and what a proxy of the fleet is.

Deploying proxy `name` replaces the manual checklist (create the VM, list it in hiera, refresh the
peers' firewall and config, check replication), in this order and for these reasons:

    ensure-security-groups    80/443 from anywhere, 8282 from the web grid, 6379 from the other
                              proxies only (a group that allows its own members), the internal
                              port from inside: shared by every proxy, created or completed
    ensure-server-group       anti-affinity, so two proxies never share a hypervisor
    create-proxy-server       a port first, in the security groups (its fixed IP is the proxy's
                              address, which the user data needs; Nova would leave the groups of
                              a port it is given as they are), the proxy's entry in the fleet
                              config's `proxies_dir`, then the server, no floating IP, with
                              cloud-init user data rendered from templates/ (the data plane,
                              Redis as a replica of the active proxy's, the active-proxy file,
                              the fleet config); ACTIVE, then its active-proxy file readable
                              over SSH (cloud-init has run)
    add-to-hiera-proxies      hiera's proxy list (compare-and-swap)
    converge-peers            the proxies group converged (workflows/converge.py): the peers'
                              config now knows the new proxy
    verify-new-proxy          its Redis replicates from the active one's with the link up, and it
                              serves a sample of routes through its own address

No step is past a point of no return: any failure rolls back every step the run touched, last
first, so nothing is left half-registered: the proxy leaves hiera, its fleet entry goes, the
peers are converged back, the server and its port are deleted. For an existing healthy proxy every
check says "already done" and nothing changes.

Removing a proxy (workflows/remove.py) is the reverse.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Literal

import yaml
from pydantic.dataclasses import dataclass as settings

from toolforgectl.adapters.cloud import NewServer, Rule
from toolforgectl.adapters.remote import Remote
from toolforgectl.adapters.render import Layout, render_proxy, user_data
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import config
from toolforgectl.core.config import Fleet, Proxy
from toolforgectl.core.config.remote import Push, Ssh
from toolforgectl.core.config.schema import SECTION, Count, Seconds, Text
from toolforgectl.core.errors import ConfigError, StepError, ToolforgectlError, UsageError
from toolforgectl.core.waiting import wait_until
from toolforgectl.workflows import converge, proxies
from toolforgectl.workflows.failover import sample_requests
from toolforgectl.workflows.playbook import steps
from toolforgectl.workflows.playbook.context import StepContext
from toolforgectl.workflows.playbook.steps import Change, Check, Outcome

PROXIES_GROUP = "proxies"  # the remote group converge-peers converges
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)$")


# --- who, where --------------------------------------------------------------------------------------


def next_name(fleet: Fleet) -> str:
    """The next free name in the fleet's prefix: proxy-01, proxy-02 -> proxy-03."""
    numbered = [m for proxy in fleet.proxies if (m := _NUMBERED.match(proxy.name))]
    if not numbered:
        raise UsageError("cannot tell the fleet's name prefix (no proxy name ends in a number): name it")
    prefix, width = numbered[0]["prefix"], len(numbered[0]["number"])
    taken = {int(m["number"]) for m in numbered if m["prefix"] == prefix}
    number = next(n for n in range(1, len(taken) + 2) if n not in taken)
    return f"{prefix}{number:0{width}d}"


def current(ctx: StepContext) -> Fleet:
    """The fleet config as it is now, read again: earlier steps may have added or removed a proxy."""
    return config.load(Path(ctx.fleet.source))


def proxies_dir(fleet: Fleet) -> Path:
    """Where the fleet config keeps one NAME.yaml per deployed proxy."""
    if not fleet.proxies_dir:
        raise ConfigError(
            f"{fleet.source}: deploy and remove need `proxies_dir` (see docs/runbooks/deploy.md)"
        )
    return Path(fleet.proxies_dir).expanduser()


def push_settings(fleet: Fleet) -> Push:
    """How the proxies group is converged by push (its layout is the new VM's too)."""
    found = fleet.remote.converge.get(PROXIES_GROUP)
    return found if isinstance(found, Push) else Push(push="dataplane")


def layout_of(fleet: Fleet, name: str) -> Layout:
    """Where proxy `name` keeps its data plane."""
    return converge.layout(push_settings(fleet), name)


def entry(fleet: Fleet, name: str, address: str) -> Proxy:
    """The fleet entry of a new proxy at `address`: Redis on the port the others use, SSH on theirs."""
    model = fleet.proxy(None)
    port = proxies.redis_address(model.redis)[1]
    root = push_settings(fleet).root
    active_file = (
        str(layout_of(fleet, name).conf_dir.parent / "active-proxy") if root else model.active_proxy_file
    )
    return Proxy(
        name=name,
        address=address,
        redis=f"redis://{address}:{port}/0",
        active_proxy_file=active_file,
        ssh=Ssh(port=model.ssh.port),
    )


def render_user_data(fleet: Fleet, proxy: Proxy, active: str) -> str:
    """The new proxy's cloud-init user data: its data plane and redis.conf (a replica of `active`'s),
    its active-proxy file naming `active`, and the fleet config."""
    with_it = replace(fleet, proxies=(*fleet.proxies, proxy), active_proxy=active)
    where = layout_of(fleet, proxy.name)
    files = {
        str(where.conf_dir / name): text for name, text in render_proxy(with_it, proxy.name, where).items()
    }
    files[proxy.active_proxy_file] = active
    fleet_config = where.conf_dir.parent / "config.yaml" if push_settings(fleet).root else Path(CONFIG_ON_VM)
    files[str(fleet_config)] = Path(fleet.source).read_text(encoding="utf-8")
    commands = ["systemctl daemon-reload", f"systemctl enable --now {' '.join(SERVICES)}"]
    return user_data(proxy.name, files, commands, {proxy.active_proxy_file: "0444"})


CONFIG_ON_VM = "/etc/toolforgectl/config.yaml"
SERVICES = ("redis-server", "nginx", "proxylistener", "kube2proxy")


def name_of(ctx: StepContext) -> str:
    """The proxy this run deploys or removes."""
    return str(ctx.args["name"])


# --- deploy ------------------------------------------------------------------------------------------


@settings(frozen=True, config=SECTION)
class GroupsOptions:
    """`ensure-security-groups`' options: the groups' names and who may reach what."""

    web: Text = "proxy-web"  # 80/443 from anywhere
    registration: Text = "proxy-registration"  # 8282 from the web grid
    redis: Text = "proxy-redis"  # 6379 from the members of this group (the other proxies)
    internal: Text = "proxy-internal"  # the internal port from inside
    web_grid: tuple[Text, ...] = ("172.16.0.0/21",)
    inside: tuple[Text, ...] = ("172.16.0.0/21",)


def _groups(ctx: StepContext) -> dict[str, list[Rule]]:
    o: GroupsOptions = ctx.options or GroupsOptions()
    plane = ctx.fleet.dataplane
    return {
        o.web: [
            Rule(plane.http_port, plane.http_port, "0.0.0.0/0"),
            Rule(plane.https_port, plane.https_port, "0.0.0.0/0"),
        ],
        o.registration: [
            Rule(ctx.fleet.proxylistener.port, ctx.fleet.proxylistener.port, cidr) for cidr in o.web_grid
        ],
        o.redis: [],  # its one rule names the group itself, known once it exists
        o.internal: [Rule(plane.internal_port, plane.internal_port, cidr) for cidr in o.inside],
    }


@steps.register("ensure-security-groups", options=GroupsOptions)
class EnsureSecurityGroups:
    """The proxies' security groups exist with their rules (shared by every proxy; kept on rollback)."""

    def check(self, ctx: StepContext) -> Check:
        """Which groups are missing, or lack a rule."""
        redis = (ctx.options or GroupsOptions()).redis
        port = proxies.redis_address(ctx.fleet.proxy(None).redis)[1]
        changes = []
        for name, rules in _groups(ctx).items():
            found = ctx.cloud().security_group(name)
            if found is None:
                changes.append(Change(f"security group {name}", "-", "created"))
                continue
            wanted = rules + ([Rule(port, port, remote_group=found[0])] if name == redis else [])
            lacking = [str(rule) for rule in wanted if rule.key() not in found[1]]
            if lacking:
                changes.append(Change(f"security group {name}", "-", f"add {', '.join(lacking)}"))
        if not changes:
            return Check.already(f"security groups {', '.join(_groups(ctx))} have their rules")
        return Check.would(*changes)

    def apply(self, ctx: StepContext) -> Outcome:
        """Create or complete each group; the Redis group lets in its own members only."""
        cloud = ctx.cloud()
        redis = (ctx.options or GroupsOptions()).redis
        for name, rules in _groups(ctx).items():
            ident, added = cloud.ensure_security_group(name, rules)
            if name == redis:
                port = proxies.redis_address(ctx.fleet.proxy(None).redis)[1]
                added = cloud.ensure_security_group(name, [Rule(port, port, remote_group=ident)])[1] or added
            if added:
                ctx.record(f"security group {name}", "-", "ensured")
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """apply raised if any group could not be made."""

    def rollback(self, ctx: StepContext) -> None:
        """Nothing: the groups are every proxy's, and harmless without members."""


@settings(frozen=True, config=SECTION)
class ServerGroupOptions:
    """`ensure-server-group`'s options."""

    name: Text = "toolforge-proxies"


@steps.register("ensure-server-group", options=ServerGroupOptions)
class EnsureServerGroup:
    """The proxies' anti-affinity server group exists (kept on rollback: the other proxies use it)."""

    def check(self, ctx: StepContext) -> Check:
        """Does it exist?"""
        name = (ctx.options or ServerGroupOptions()).name
        if ctx.cloud().server_group_id(name) is not None:
            return Check.already(f"server group {name} exists")
        return Check.would(Change(f"server group {name}", "-", "anti-affinity"))

    def apply(self, ctx: StepContext) -> Outcome:
        """Create it unless it exists."""
        name = (ctx.options or ServerGroupOptions()).name
        if ctx.cloud().ensure_server_group(name)[1]:
            ctx.record(f"server group {name}", "-", "created")
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """apply raised if it could not be made."""

    def rollback(self, ctx: StepContext) -> None:
        """Nothing (see the class docstring)."""


@settings(frozen=True, config=SECTION)
class ServerOptions:
    """`create-proxy-server`'s options."""

    boot_timeout: Seconds = 600.0  # for ACTIVE, then for cloud-init
    server_group: Text = "toolforge-proxies"
    security_groups: tuple[Text, ...] = ("proxy-web", "proxy-registration", "proxy-redis", "proxy-internal")


@steps.register("create-proxy-server", options=ServerOptions)
class CreateProxyServer:
    """The proxy's server is ACTIVE with cloud-init done, and the fleet config lists the proxy."""

    def check(self, ctx: StepContext) -> Check:
        """Done when the server is ACTIVE and the fleet lists the proxy."""
        name = name_of(ctx)
        status = ctx.cloud().server_status(ctx.fleet.needs_cloud().server(name))
        listed = (proxies_dir(ctx.fleet) / f"{name}.yaml").exists()
        if status == "ACTIVE" and listed:
            return Check.already(f"server {name} is ACTIVE and in the fleet")
        if status is not None:
            raise StepError(
                f"server {name} exists ({status}) but is not a healthy proxy of the fleet: remove it first"
            )
        a = ctx.args
        return Check.would(
            Change(f"server {name}", "-", f"{a['flavor']}, {a['image']}, network {a['network']}")
        )

    def apply(self, ctx: StepContext) -> Outcome:
        """Port, fleet entry, server with user data, ACTIVE, cloud-init done (over SSH)."""
        name, cloud, opts = name_of(ctx), ctx.cloud(), ctx.options or ServerOptions()
        port = cloud.create_port(str(ctx.args["network"]), name, opts.security_groups)
        ctx.record(f"port of {name}", "-", port.fixed_ip)
        proxy = entry(ctx.fleet, name, port.fixed_ip)
        path = proxies_dir(ctx.fleet) / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"name": name, "address": proxy.address, "redis": proxy.redis,
                "active_proxy_file": proxy.active_proxy_file, "ssh": {"port": proxy.ssh.port}}  # fmt: skip
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        ctx.record(f"fleet entry {path}", "-", proxy.address)
        group = cloud.ensure_server_group(opts.server_group)[0]
        spec = NewServer(
            name, str(ctx.args["flavor"]), str(ctx.args["image"]), port.port_id,
            render_user_data(ctx.fleet, proxy, str(ctx.args["active"])), group,
        )  # fmt: skip
        cloud.create_server(spec)
        ctx.record(f"server {name}", "-", "BUILD")
        ctx.progress(f"{name}: waiting for ACTIVE (at most {opts.boot_timeout:g}s)")
        cloud.wait_active(name, opts.boot_timeout)
        self._wait_booted(ctx, current(ctx).proxy(name), opts.boot_timeout)
        return Outcome(note=f"{name} at {proxy.address}")

    def _wait_booted(self, ctx: StepContext, proxy: Proxy, timeout: float) -> None:
        host = current(ctx).ssh_hosts((proxy.name,))[0]

        def booted() -> bool:
            try:
                return ctx.remote().read_file(host, proxy.active_proxy_file) is not None
            except ToolforgectlError:
                return False

        wait_until(booted, f"cloud-init on {proxy.name} (its active-proxy file over SSH)", timeout, 0.5)

    def verify(self, ctx: StepContext) -> None:
        """The server is ACTIVE."""
        if ctx.cloud().server_status(name_of(ctx)) != "ACTIVE":
            raise StepError(f"server {name_of(ctx)} is not ACTIVE")

    def rollback(self, ctx: StepContext) -> None:
        """Delete the server and its port, drop the fleet entry, converge the peers back."""
        name, cloud = name_of(ctx), ctx.cloud()
        cloud.delete_server(name)
        cloud.delete_ports_named(name)
        (proxies_dir(ctx.fleet) / f"{name}.yaml").unlink(missing_ok=True)
        converge_proxies(ctx, current(ctx))


def hiera_proxies(ctx: StepContext) -> list[str]:
    """Hiera's proxy list (`hiera.proxies_key`); empty when it is not a list."""
    found = ctx.hiera().get(ctx.fleet.need_hiera().proxies_key)
    return [str(item) for item in found] if isinstance(found, list) else []


@steps.register("add-to-hiera-proxies")
class AddToHieraProxies:
    """Hiera's proxy list (`hiera.proxies_key`) names the proxy (compare-and-swap)."""

    def check(self, ctx: StepContext) -> Check:
        """Read the list."""
        key, now = ctx.fleet.need_hiera().proxies_key, hiera_proxies(ctx)
        if name_of(ctx) in now:
            return Check.already(f"hiera {key} lists {name_of(ctx)}")
        return Check.would(Change(f"hiera {key}", now, [*now, name_of(ctx)]))

    def apply(self, ctx: StepContext) -> Outcome:
        """Append it, if the list is still what the plan showed."""
        key, now = ctx.fleet.need_hiera().proxies_key, hiera_proxies(ctx)
        expect = ctx.planned.changes[0].old if ctx.planned and ctx.planned.changes else now
        change = ctx.hiera().set(
            key, [*now, name_of(ctx)], expect=expect, message=f"{key}: add {name_of(ctx)} ({ctx.reason})"
        )
        ctx.record(f"hiera {key}", change.old, change.new)
        return Outcome(diff=change.diff)

    def verify(self, ctx: StepContext) -> None:
        """Read it back."""
        if name_of(ctx) not in hiera_proxies(ctx):
            raise StepError(f"hiera does not list {name_of(ctx)}")

    def rollback(self, ctx: StepContext) -> None:
        """Take it out again, while the list still holds it."""
        remove_from_hiera(ctx)


def remove_from_hiera(ctx: StepContext) -> None:
    """Take the run's proxy out of hiera's list, if it is there (compare-and-swap)."""
    key, now = ctx.fleet.need_hiera().proxies_key, hiera_proxies(ctx)
    if name_of(ctx) in now:
        wanted = [item for item in now if item != name_of(ctx)]
        ctx.hiera().set(key, wanted, expect=now, message=f"{key}: remove {name_of(ctx)} ({ctx.reason})")


def converge_proxies(ctx: StepContext, fleet: Fleet) -> list[converge.Converged]:
    """Converge the proxies group of `fleet` (read again by the caller: it may have changed)."""
    chosen = converge.targets(fleet, PROXIES_GROUP) if PROXIES_GROUP in fleet.remote.converge else []
    with Remote(fleet.remote) as remote:
        return converge.run(fleet, remote, chosen, ctx.entry.batch, ctx.entry.timeout, ctx.progress)


@settings(frozen=True, config=SECTION)
class PeersOptions:
    """`converge-peers`' options."""

    change: Literal["add", "remove"] = "add"  # what the run does to the proxy's membership


@steps.register("converge-peers", options=PeersOptions)
class ConvergePeers:
    """The proxies group is converged with the fleet as it is now (the peers learn of the change)."""

    def check(self, ctx: StepContext) -> Check:
        """While the fleet does not show the change yet: planned. Then: what converge would change."""
        fleet = current(ctx)
        if PROXIES_GROUP not in fleet.remote.converge:
            return Check.already(f"no converge for group {PROXIES_GROUP} (remote.converge)")
        listed = any(proxy.name == name_of(ctx) for proxy in fleet.proxies)
        if listed != ((ctx.options or PeersOptions()).change == "add"):
            return Check.would(Change(f"group {PROXIES_GROUP}", "-", "converged"))
        plans = [converge.plan(fleet, ctx.remote(), t) for t in converge.targets(fleet, PROXIES_GROUP)]
        changes = [change for change, _ in plans if change is not None]
        if not changes:
            return Check.already(f"group {PROXIES_GROUP} is converged")
        return Check.would(*changes, diff="".join(diff for _, diff in plans))

    def apply(self, ctx: StepContext) -> Outcome:
        """Converge them; a failed host fails the step (and the run rolls back)."""
        outcomes = converge_proxies(ctx, current(ctx))
        for outcome in outcomes:
            ctx.record(outcome.host, outcome.group, {"result": outcome.result, "detail": outcome.detail})
        bad = [o for o in outcomes if o.result in ("failed", "skipped")]
        if bad:
            raise StepError("converge failed on: " + "; ".join(f"{o.host}: {o.detail}" for o in bad))
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """apply raised for every failed host."""

    def rollback(self, ctx: StepContext) -> None:
        """Nothing here: the step that removes the proxy from the fleet converges the peers again."""

    def instructions(self, ctx: StepContext) -> str:
        """Converge again once the hosts are fixed."""
        return f"fix the hosts named above, then: toolforgectl converge --group {PROXIES_GROUP}"


@settings(frozen=True, config=SECTION)
class VerifyOptions:
    """`verify-new-proxy`'s options."""

    sample: Count = 5


@steps.register("verify-new-proxy", options=VerifyOptions)
class VerifyNewProxy:
    """The proxy's Redis replicates from the active one's with the link up, and it serves routes."""

    def check(self, ctx: StepContext) -> Check:
        """Holds already (a repeated run), or is verified after the steps before it."""
        problems = self._problems(ctx)
        if not problems:
            return Check.already(f"{name_of(ctx)} replicates and serves")
        return Check.would(Change(f"proxy {name_of(ctx)}", "-", "replicating, serving"))

    def apply(self, ctx: StepContext) -> Outcome:
        """Nothing to change: this step only verifies (retried as the playbook says)."""
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """Replication link up; a sample of routes served through its own address."""
        problems = self._problems(ctx)
        if problems:
            raise StepError("; ".join(problems))

    def rollback(self, ctx: StepContext) -> None:
        """Nothing to undo."""

    def _problems(self, ctx: StepContext) -> list[str]:
        fleet = current(ctx)
        try:
            proxy, active = fleet.proxy(name_of(ctx)), fleet.proxy(str(ctx.args["active"]))
        except ConfigError as exc:
            return [str(exc)]
        try:
            state = RouteStore.from_url(proxy.redis).replication()
        except ToolforgectlError as exc:
            return [f"{proxy.name}'s Redis: {exc}"]
        linked = state.primary == proxies.redis_address(active.redis) and state.link_up
        if proxy.name != active.name and not linked:  # the active proxy itself: its primary is its own
            return [f"{proxy.name}'s Redis does not replicate from {active.name}'s with the link up"]
        sample = (ctx.options or VerifyOptions()).sample
        answers = sample_requests(ctx, proxy.address, ctx.store(active.name), sample, active.address)
        bad = [f"{path} {a.status or a.error}" for path, a in answers.items() if a.status is None]
        return [f"{proxy.name} does not serve: {', '.join(bad)}"] if bad else []
