"""The steps of a failover (playbooks/failover.yaml, failover-temporary.yaml) and of `active-proxy set`.

A failover moves the active proxy from `from` to `to` (the operation's arguments) and loses
nothing on the way. The order, and why:

    move-floating-ip           visitors reach `to` (whose nginx serves from its replica meanwhile);
                               compare-and-swap on Neutron's revision, verified through the cloud
    switch-redis-primary       the point of no return: writes on `from` paused, `to` caught up to
                               the exact offset, promoted, `from` made its replica, writes let go
                               (held writes then fail as read-only, and clients retry them);
                               each Redis writes its new role into its redis.conf (CONFIG REWRITE)
    flip-active-proxy-files    every proxy's (and every listed host's) active-proxy file names `to`:
                               route writers follow (proxylistener writes to `to`'s Redis wherever
                               it is reached, kube2proxy writes only on `to`)
    set-hiera-active-proxy     hiera says `to`, so the next puppet run agrees
    repoint-other-replicas     any third proxy replicates from `to` (saved in its redis.conf too)
    update-dns                 the public name's record names `to`, every resolver answers it
                               (workflows/dnsrecord.py)
    converge-hosts             each host group converged (workflows/converge.py: the site's
                               puppet agent, or our data plane pushed and reloaded)
    verify-through-floating-ip the site answers through the floating IP, and every source agrees

Every check reads the real state (the cloud, each Redis, each file over SSH, hiera), so a step
that holds already is "already done", and `--resume` re-checks instead of trusting a checkpoint.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic.dataclasses import dataclass as settings

from toolforgectl.adapters.probe import Answer, https_get
from toolforgectl.adapters.remote import failed
from toolforgectl.adapters.routestore import Replication, RouteStore, wait_caught_up
from toolforgectl.core import activeproxy
from toolforgectl.core.config import Fleet, Proxy
from toolforgectl.core.config.remote import SshHost
from toolforgectl.core.config.schema import SECTION, Count, Seconds
from toolforgectl.core.errors import ActiveProxyError, StepError, ToolforgectlError, UsageError
from toolforgectl.workflows import proxies
from toolforgectl.workflows.playbook import steps
from toolforgectl.workflows.playbook.context import StepContext
from toolforgectl.workflows.playbook.steps import Change, Check, Outcome

# --- who is who ---------------------------------------------------------------------------------


def old(ctx: StepContext) -> Proxy:
    """The proxy the operation moves away from (`from`, fixed when the run started)."""
    return ctx.fleet.proxy(ctx.args["from"])


def new(ctx: StepContext) -> Proxy:
    """The proxy that is to be active (`to`)."""
    return ctx.fleet.proxy(ctx.args["to"])


def _redis_address(proxy: Proxy) -> tuple[str, int]:
    return proxies.redis_address(proxy.redis)


def _is_replica_of(state: Replication, primary: Proxy) -> bool:
    return not state.is_primary and state.primary == _redis_address(primary)


def starting_point(fleet: Fleet, to: str | None, *, temporary: bool) -> tuple[str, str]:
    """(`from`, `to`) for a new run: `from` is the proxy whose Redis is the primary (the one whose
    writes must not be lost), or for --temporary the proxy the floating IP points at; `to` is
    `--to`, or the only other proxy of a two-proxy fleet."""
    current = _floating_ip_holder(fleet) if temporary else proxies.redis_primary(fleet)
    if to is None:
        others = [proxy.name for proxy in fleet.proxies if proxy.name != current]
        if len(others) != 1:
            raise UsageError(f"say which proxy to fail over to: --to {'|'.join(others) or 'PROXY'}")
        to = others[0]
    return current, fleet.proxy(to).name


def _floating_ip_holder(fleet: Fleet) -> str:
    fleet.needs_cloud()  # a temporary failover moves the floating IP: say so when there is none
    holder, problem = proxies.floating_ip_holder(fleet)
    if problem:
        raise StepError(problem)
    return holder


# --- the files that name the active proxy --------------------------------------------------------


@dataclass(frozen=True)
class ActiveProxyFile:
    """One active-proxy file: on which host, at which path."""

    host: SshHost
    path: str

    def __str__(self) -> str:
        return f"{self.host}:{self.path}"


def active_proxy_files(fleet: Fleet) -> list[ActiveProxyFile]:
    """Every proxy's own file, then the file of every host of `remote.active_proxy_files`' groups."""
    files = [
        ActiveProxyFile(fleet.ssh_hosts((proxy.name,))[0], proxy.active_proxy_file) for proxy in fleet.proxies
    ]
    for group, path in fleet.remote.active_proxy_files.items():
        files += [ActiveProxyFile(host, path) for host in fleet.ssh_hosts(group)]
    return files


def read_active_proxy_file(ctx: StepContext, file: ActiveProxyFile) -> str:
    """What the file names, as its host's daemons would read it: a host, '' for the kill switch,
    '(missing)' or '(unreadable: ...)'."""
    try:
        text = ctx.remote().read_file(file.host, file.path)
    except ToolforgectlError as exc:
        return f"(unreadable: {exc})"
    if text is None:
        return "(missing)"
    try:
        return activeproxy.parse(text, str(file)).host or ""
    except ActiveProxyError as exc:
        return f"(unreadable: {exc})"


# --- preflight -----------------------------------------------------------------------------------


@steps.register("proxies-reachable")
class ProxiesReachable:
    """Every proxy's Redis answers and its nginx serves HTTPS."""

    def check(self, ctx: StepContext) -> Check:
        """PING each Redis; one HTTPS request to each proxy's own address."""
        problems = []
        for proxy in ctx.fleet.proxies:
            try:
                ctx.store(proxy.name).ping()
            except ToolforgectlError as exc:
                problems.append(f"{proxy.name}: {exc}")
            answer = https_get(proxy.address, ctx.fleet.dataplane.https_port, "/", _host(ctx.fleet))
            if answer.status is None:
                problems.append(f"{proxy.name}: nginx does not answer HTTPS: {answer.error}")
        if problems:
            return Check(False, note="; ".join(problems))
        return Check.already(f"{len(ctx.fleet.proxies)} proxies answer (Redis and HTTPS)")


@settings(frozen=True, config=SECTION)
class AgreeOptions:
    """`sources-agree`'s options."""

    check_floating_ip: bool = True  # False: a temporary failover, where the floating IP may be anywhere


@steps.register("sources-agree", options=AgreeOptions)
class SourcesAgree:
    """Hiera, every active-proxy file, the floating IP and the Redis roles all name `from` (or
    `--force`, which only reports what disagrees)."""

    def check(self, ctx: StepContext) -> Check:
        """Read every source; a disagreement is a split brain, refused unless forced."""
        with_floating_ip = _options(ctx, AgreeOptions).check_floating_ip
        # Without the floating IP (a temporary failover, which may have moved it already): the
        # other sources must agree on the proxy whose Redis is the primary.
        active = old(ctx) if with_floating_ip else ctx.fleet.proxy(proxies.redis_primary(ctx.fleet))
        problems = disagreements(ctx, active, floating_ip=with_floating_ip)
        if not problems:
            return Check.already(f"every source names {active.name}")
        note = "split brain: " + "; ".join(problems)
        if ctx.args.get("force"):
            return Check.already(f"{note} (going on: --force)")
        return Check(False, note=f"{note}. Repair it with `toolforgectl active-proxy set`, or pass --force")


def disagreements(ctx: StepContext, active: Proxy, *, floating_ip: bool = True) -> list[str]:
    """Every source that does not name `active`, in words an operator can act on."""
    problems = []
    hiera = ctx.hiera()
    key = ctx.fleet.need_hiera().active_proxy_key
    named = hiera.get(key)
    if named != active.name:
        problems.append(f"hiera {key} names {named!r}, not {active.name}")
    for file in active_proxy_files(ctx.fleet):
        found = read_active_proxy_file(ctx, file)
        if not (found and activeproxy.names_proxy(found, active.name, active.address)):
            problems.append(f"{file} names {found or '(empty: the kill switch)'}, not {active.name}")
    if floating_ip:
        problems += _floating_ip_problems(ctx, active)
    for proxy in ctx.fleet.proxies:
        try:
            state = ctx.store(proxy.name).replication()
        except ToolforgectlError as exc:
            problems.append(f"{proxy.name}'s Redis: {exc}")
            continue
        if proxy.name == active.name and not state.is_primary:
            problems.append(f"{proxy.name}'s Redis is a replica, though {proxy.name} is to be active")
        elif proxy.name != active.name and not _is_replica_of(state, active):
            what = "a primary" if state.is_primary else f"a replica of {state.primary}"
            problems.append(f"{proxy.name}'s Redis is {what}, not a replica of {active.name}'s")
    return problems


def _floating_ip_problems(ctx: StepContext, active: Proxy) -> list[str]:
    cloud = ctx.fleet.needs_cloud()
    try:
        plan = ctx.cloud().plan_move(cloud.floating_ip, cloud.server(active.name))
    except ToolforgectlError as exc:
        return [f"the floating IP cannot be read: {exc}"]
    if plan.done:
        return []
    where = plan.floating_ip.fixed_ip or "nothing"
    return [f"floating IP {cloud.floating_ip} points at {where}, not {active.name}"]


@settings(frozen=True, config=SECTION)
class CaughtUpOptions:
    """`standby-caught-up`'s options."""

    max_lag: int = 0  # bytes of replication stream the standby may be behind


@steps.register("standby-caught-up", options=CaughtUpOptions)
class StandbyCaughtUp:
    """`to`'s Redis replicates from `from`'s with the link up and is caught up."""

    def check(self, ctx: StepContext) -> Check:
        """Within the step's timeout, the standby's offset reaches the primary's (less max_lag)."""
        primary, replica = ctx.store(old(ctx).name), ctx.store(new(ctx).name)
        limit = _options(ctx, CaughtUpOptions).max_lag
        seen: list[str] = []

        def caught_up() -> bool:
            mine, theirs = replica.replication(), primary.replication()
            if not _is_replica_of(mine, old(ctx)):
                seen[:] = [f"{new(ctx).name}'s Redis does not replicate from {old(ctx).name}'s"]
                return False
            if not mine.link_up:
                seen[:] = [f"{new(ctx).name}'s replication link is down"]
                return False
            seen[:] = [f"{theirs.offset - mine.offset} bytes behind"]
            return bool(theirs.offset - mine.offset <= limit)

        try:
            ctx.wait(caught_up, f"{new(ctx).name}'s Redis to catch up")
        except ToolforgectlError:
            return Check(False, note=seen[-1] if seen else "cannot read replication")
        return Check.already(f"{new(ctx).name}'s Redis replicates from {old(ctx).name}'s, {seen[-1]}")


@settings(frozen=True, config=SECTION)
class ServesOptions:
    """`standby-serves`' options."""

    sample: Count = 5  # tools to request


@steps.register("standby-serves", options=ServesOptions)
class StandbyServes:
    """`to` serves a sample of routes through its own address."""

    def check(self, ctx: StepContext) -> Check:
        """GET /<tool>/ for a sample of tools from `to`'s nginx; none may fail (5xx or no answer)."""
        proxy = new(ctx)
        answers = sample_requests(
            ctx, proxy.address, ctx.store(proxy.name), _options(ctx, ServesOptions).sample, old(ctx).address
        )
        bad = {path: answer for path, answer in answers.items() if answer.status is None}
        if bad:
            return Check(False, note=f"{proxy.name} does not serve: {_describe(bad)}")
        return Check.already(f"{proxy.name} serves {', '.join(answers) or 'no tools (none registered)'}")


def sample_requests(
    ctx: StepContext, address: str, store: RouteStore, sample: int, reference: str
) -> dict[str, Answer]:
    """One GET per sampled tool to `address` (a proxy, or the floating IP), each judged against
    the same request to `reference`: a tool whose own server is down fails on every proxy, which
    is not the proxy's fault. An answer counts as bad (status None) when there is none, or when
    `address` fails (5xx) where `reference` serves."""
    tools = store.tools()
    chosen = sorted(random.sample(tools, min(sample, len(tools))))
    port, host = ctx.fleet.dataplane.https_port, _host(ctx.fleet)
    answers = {}
    for tool in chosen:
        path = f"/{tool}/"
        answer = https_get(address, port, path, host)
        if answer.status is not None and not answer.served and https_get(reference, port, path, host).served:
            answer = Answer(None, f"HTTP {answer.status}, where {reference} serves it")
        answers[path] = answer
    return answers


# --- the steps -----------------------------------------------------------------------------------


@settings(frozen=True, config=SECTION)
class MoveOptions:
    """`move-floating-ip`'s options."""

    wait: Seconds = 60.0  # for the router to apply the move


@steps.register("move-floating-ip", options=MoveOptions)
class MoveFloatingIP:
    """Move the floating IP to `to` (compare-and-swap on Neutron's revision) and wait until it holds."""

    def check(self, ctx: StepContext) -> Check:
        """Where the floating IP points now, and the revision a move would be made against."""
        cloud = ctx.fleet.needs_cloud()
        plan = ctx.cloud().plan_move(cloud.floating_ip, cloud.server(new(ctx).name))
        if plan.done:
            return Check.already(f"floating IP {cloud.floating_ip} points at {new(ctx).name}")
        change = Change(f"floating IP {cloud.floating_ip}", plan.floating_ip.fixed_ip, plan.to.fixed_ip)
        return Check.would(change, note=plan.describe())

    def apply(self, ctx: StepContext) -> Outcome:
        """Move it, if it still points where the confirmed plan showed; the move itself is a
        compare-and-swap on the revision just read, so a change in between is refused too."""
        cloud = ctx.fleet.needs_cloud()
        now = ctx.cloud().floating_ip(cloud.floating_ip)
        planned = ctx.planned.changes[0].old if ctx.planned and ctx.planned.changes else now.fixed_ip
        if now.fixed_ip != planned:
            raise StepError(
                f"floating IP {cloud.floating_ip} points at {now.fixed_ip or 'nothing'} now, not at"
                f" {planned or 'nothing'} as the plan showed: someone moved it; nothing was changed"
            )
        moved = ctx.cloud().move_floating_ip(cloud.floating_ip, cloud.server(new(ctx).name), now.revision)
        ctx.record(f"floating IP {cloud.floating_ip}", now.fixed_ip, moved.fixed_ip)
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """The router applied it (Neutron says ACTIVE on `to`'s address)."""
        cloud = ctx.fleet.needs_cloud()
        target = ctx.cloud().server_port(cloud.server(new(ctx).name))
        ctx.cloud().wait_associated(cloud.floating_ip, target.fixed_ip, _options(ctx, MoveOptions).wait)

    def rollback(self, ctx: StepContext) -> None:
        """Point it back at `from`, if it still points at `to` (a move someone else made is theirs)."""
        cloud = ctx.fleet.needs_cloud()
        plan = ctx.cloud().plan_move(cloud.floating_ip, cloud.server(new(ctx).name))
        if not plan.done:
            return
        back = ctx.cloud().plan_move(cloud.floating_ip, cloud.server(old(ctx).name))
        ctx.cloud().move_floating_ip(
            cloud.floating_ip, cloud.server(old(ctx).name), back.floating_ip.revision
        )

    def instructions(self, ctx: StepContext) -> str:
        """How to move it back by hand."""
        cloud = ctx.fleet.needs_cloud()
        return (
            f"the floating IP {cloud.floating_ip} now points at {new(ctx).name}; to send visitors back:"
            f" toolforgectl failover --temporary --to {old(ctx).name} --reason '...'"
        )


@settings(frozen=True, config=SECTION)
class SwitchOptions:
    """`switch-redis-primary`'s options."""

    pause: Seconds = 10.0  # longest time writes on the old primary are held


@steps.register("switch-redis-primary", options=SwitchOptions)
class SwitchRedisPrimary:
    """Make `to`'s Redis the primary with every acknowledged write, and `from`'s its replica."""

    def check(self, ctx: StepContext) -> Check:
        """Done when `to`'s Redis is a primary and `from`'s replicates from it."""
        mine, theirs = ctx.store(new(ctx).name).replication(), ctx.store(old(ctx).name).replication()
        if mine.is_primary and _is_replica_of(theirs, new(ctx)):
            return Check.already(
                f"{new(ctx).name}'s Redis is the primary; {old(ctx).name}'s replicates from it"
            )
        return Check.would(
            Change(f"{new(ctx).name}'s Redis", _role(mine), "primary"),
            Change(f"{old(ctx).name}'s Redis", _role(theirs), f"replica of {new(ctx).name}"),
        )

    def apply(self, ctx: StepContext) -> Outcome:
        """Pause writes on `from`, wait until `to` has them all, promote `to`, re-point `from`, unpause."""
        primary, replica = ctx.store(old(ctx).name), ctx.store(new(ctx).name)
        mine, theirs = replica.replication(), primary.replication()
        if mine.is_primary and theirs.is_primary:
            raise StepError(
                f"both {old(ctx).name}'s and {new(ctx).name}'s Redis are primaries (an earlier run stopped"
                f" between promoting one and re-pointing the other): {self.instructions(ctx)}"
            )
        if not mine.is_primary:
            primary.pause_writes(int(_options(ctx, SwitchOptions).pause * 1000))
            try:
                offset = wait_caught_up(primary, replica, timeout=_options(ctx, SwitchOptions).pause)
                ctx.progress(f"{new(ctx).name}'s Redis holds every write, to offset {offset}")
                replica.promote()
                ctx.record(f"{new(ctx).name}'s Redis", "replica", "primary")
                host, port = _redis_address(new(ctx))
                primary.replicate_from(host, port)
                ctx.record(f"{old(ctx).name}'s Redis", "primary", f"replica of {new(ctx).name}")
            finally:
                primary.unpause()
        save_roles(ctx, (new(ctx), old(ctx)))
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """`from`'s Redis reports the link to `to`'s up."""
        state = ctx.store(old(ctx).name).replication()
        if not (_is_replica_of(state, new(ctx)) and state.link_up):
            raise StepError(
                f"{old(ctx).name}'s Redis does not yet replicate from {new(ctx).name}'s with the link up"
            )

    def instructions(self, ctx: StepContext) -> str:
        """How to inspect and finish the switch by hand."""
        a, b = old(ctx), new(ctx)
        host, port = _redis_address(b)
        return (
            f"{b.name}'s Redis was promoted. Compare the two (`toolforgectl --proxy {a.name} debug redis`"
            f" and `--proxy {b.name}`); when {b.name}'s holds every route, make {a.name}'s its replica with"
            f" `redis-cli -u {a.redis} REPLICAOF {host} {port}`, then `--resume` this run"
        )


def save_roles(ctx: StepContext, proxies: Iterable[Proxy]) -> None:
    """Write each proxy's Redis role into the redis.conf it runs from (CONFIG REWRITE), so that a
    restart of that Redis keeps the role the failover gave it instead of the rendered one's."""
    for proxy in proxies:
        store = ctx.store(proxy.name)
        try:
            saved = store.save_role()
        except ToolforgectlError as exc:
            raise StepError(
                f"{proxy.name}'s Redis has its new role but cannot write it to its config file, so a"
                f" restart would bring back the old one: {exc}. Fix that, then run"
                f" `redis-cli -u {proxy.redis} CONFIG REWRITE`"
            ) from None
        if not saved:
            ctx.progress(f"{proxy.name}'s Redis runs without a config file: a restart forgets its role")


def _role(state: Replication) -> str:
    """How a plan names a Redis's role: primary, or whose replica."""
    if state.is_primary:
        return "primary"
    if state.primary is None:
        return "replica"
    host, port = state.primary
    return f"replica of {host}:{port}"


@steps.register("flip-active-proxy-files")
class FlipActiveProxyFiles:
    """Every proxy's active-proxy file, and those of `remote.active_proxy_files`' hosts, name `to`."""

    def check(self, ctx: StepContext) -> Check:
        """Read every file over SSH."""
        changes = [
            Change(str(file), found, new(ctx).name)
            for file in active_proxy_files(ctx.fleet)
            if (found := read_active_proxy_file(ctx, file)) != new(ctx).name
        ]
        if not changes:
            return Check.already(f"every active-proxy file names {new(ctx).name}")
        return Check.would(*changes)

    def apply(self, ctx: StepContext) -> Outcome:
        """Write each file that does not name `to` (atomically), the proxies' first."""
        problems = []
        for file in active_proxy_files(ctx.fleet):
            found = read_active_proxy_file(ctx, file)
            if found == new(ctx).name:
                continue
            result = ctx.remote().write_file(file.host, file.path, new(ctx).name, mode=0o444)
            if result.ok:
                ctx.record(str(file), found, new(ctx).name)
            else:
                problems.append(f"{file}: {result.error}")
        if problems:
            raise StepError("cannot write: " + "; ".join(problems))
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """Read them back."""
        left = self.check(ctx)
        if not left.done:
            raise StepError(f"active-proxy files still disagree: {left.note}")

    def rollback(self, ctx: StepContext) -> None:
        """Put back what the plan showed, in files that still name `to`."""
        before = {change.target: change.old for change in (ctx.planned.changes if ctx.planned else ())}
        for file in active_proxy_files(ctx.fleet):
            old_name = before.get(str(file))
            usable = isinstance(old_name, str) and old_name and not old_name.startswith("(")
            if usable and read_active_proxy_file(ctx, file) == new(ctx).name:
                ctx.remote().write_file(file.host, file.path, str(old_name), mode=0o444)

    def instructions(self, ctx: StepContext) -> str:
        """The command that makes them agree again."""
        command = f"toolforgectl active-proxy set {new(ctx).name} --reason '...'"
        return f"make every active-proxy file name one proxy: {command}"


@steps.register("set-hiera-active-proxy")
class SetHieraActiveProxy:
    """Hiera's active-proxy key names `to` (compare-and-swap)."""

    def check(self, ctx: StepContext) -> Check:
        """Read the key."""
        key = ctx.fleet.need_hiera().active_proxy_key
        plan = ctx.hiera().plan(key, new(ctx).name)
        if not plan.changed:
            return Check.already(f"hiera {key} is {new(ctx).name}")
        return Check.would(Change(f"hiera {key}", plan.old, new(ctx).name), diff=plan.diff)

    def apply(self, ctx: StepContext) -> Outcome:
        """Write it, if it still holds what the plan showed."""
        key = ctx.fleet.need_hiera().active_proxy_key
        expect = ctx.planned.changes[0].old if ctx.planned and ctx.planned.changes else ctx.hiera().get(key)
        change = ctx.hiera().set(
            key, new(ctx).name, expect=expect, message=f"{key}: {new(ctx).name} ({ctx.reason})"
        )
        ctx.record(f"hiera {key}", change.old, change.new)
        return Outcome(diff=change.diff)

    def verify(self, ctx: StepContext) -> None:
        """Read it back."""
        key = ctx.fleet.need_hiera().active_proxy_key
        if ctx.hiera().get(key) != new(ctx).name:
            raise StepError(f"hiera {key} does not read {new(ctx).name}")

    def rollback(self, ctx: StepContext) -> None:
        """Put the old value back while the key still holds ours."""
        key = ctx.fleet.need_hiera().active_proxy_key
        if ctx.planned and ctx.planned.changes and ctx.hiera().get(key) == new(ctx).name:
            old_value = ctx.planned.changes[0].old
            ctx.hiera().set(
                key, old_value, expect=new(ctx).name, message=f"{key}: back to {old_value} ({ctx.reason})"
            )

    def instructions(self, ctx: StepContext) -> str:
        """The command that sets it."""
        key = ctx.fleet.need_hiera().active_proxy_key
        return f"set hiera by hand if needed: toolforgectl hiera set {key} {new(ctx).name} --reason '...'"


@steps.register("repoint-other-replicas")
class RepointOtherReplicas:
    """Every proxy other than `from` and `to` replicates from `to`'s Redis."""

    def _others(self, ctx: StepContext) -> list[Proxy]:
        return [p for p in ctx.fleet.proxies if p.name not in (old(ctx).name, new(ctx).name)]

    def check(self, ctx: StepContext) -> Check:
        """Read each one's replication."""
        changes = []
        for proxy in self._others(ctx):
            state = ctx.store(proxy.name).replication()
            if not _is_replica_of(state, new(ctx)):
                changes.append(Change(f"{proxy.name}'s Redis", _role(state), f"replica of {new(ctx).name}"))
        if not changes:
            return Check.already(
                f"every other proxy replicates from {new(ctx).name}"
                if self._others(ctx)
                else "no other proxies"
            )
        return Check.would(*changes)

    def apply(self, ctx: StepContext) -> Outcome:
        """REPLICAOF `to` on each."""
        host, port = _redis_address(new(ctx))
        for proxy in self._others(ctx):
            ctx.store(proxy.name).replicate_from(host, port)
            ctx.record(f"{proxy.name}'s Redis", "?", f"replica of {new(ctx).name}")
        save_roles(ctx, self._others(ctx))
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """Each link is up."""
        for proxy in self._others(ctx):
            state = ctx.store(proxy.name).replication()
            if not (_is_replica_of(state, new(ctx)) and state.link_up):
                raise StepError(f"{proxy.name}'s Redis is not yet linked to {new(ctx).name}'s")

    def instructions(self, ctx: StepContext) -> str:
        """The command per proxy."""
        host, port = _redis_address(new(ctx))
        return (
            "; ".join(f"redis-cli -u {p.redis} REPLICAOF {host} {port}" for p in self._others(ctx))
            or "nothing"
        )


@settings(frozen=True, config=SECTION)
class VerifyOptions:
    """`verify-through-floating-ip`'s options."""

    sample: Count = 5
    sources: bool = True  # every source must name `to` too (False: a temporary failover)


@steps.register("verify-through-floating-ip", options=VerifyOptions)
class VerifyThroughFloatingIP:
    """The site answers through the floating IP, and every source names `to`."""

    def check(self, ctx: StepContext) -> Check:
        """Holds already (a resumed or repeated run), or will be verified after the steps before it."""
        problems = self._problems(ctx)
        if not problems:
            return Check.already(self._holds(ctx))
        return Check.would(Change("the site through the floating IP", "-", f"served by {new(ctx).name}"))

    def apply(self, ctx: StepContext) -> Outcome:
        """Nothing to change: this step only verifies (retried as the playbook says)."""
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """Sample requests through the floating IP; read every source."""
        problems = self._problems(ctx)
        if problems:
            raise StepError("; ".join(problems))
        ctx.progress(self._holds(ctx))

    def rollback(self, ctx: StepContext) -> None:
        """Nothing to undo."""

    def instructions(self, ctx: StepContext) -> str:
        """What to look at."""
        return "see what disagrees: toolforgectl active-proxy show; toolforgectl proxy list"

    def _problems(self, ctx: StepContext) -> list[str]:
        cloud = ctx.fleet.needs_cloud()
        sample = _options(ctx, VerifyOptions).sample
        answers = sample_requests(ctx, cloud.floating_ip, ctx.store(new(ctx).name), sample, new(ctx).address)
        bad = {path: answer for path, answer in answers.items() if answer.status is None}
        problems = [f"through {cloud.floating_ip}: {_describe(bad)}"] if bad else []
        if _options(ctx, VerifyOptions).sources:
            return problems + disagreements(ctx, new(ctx))
        return problems + _floating_ip_problems(ctx, new(ctx))

    def _holds(self, ctx: StepContext) -> str:
        agree = "every source names" if _options(ctx, VerifyOptions).sources else "it points at"
        return f"{ctx.fleet.needs_cloud().floating_ip} serves; {agree} {new(ctx).name}"


@steps.register("hosts-reachable")
class HostsReachable:
    """Every host a later step acts on answers over SSH (the proxies, and every converge group)."""

    def check(self, ctx: StepContext) -> Check:
        """Run `true` on each host (a read: it runs in a dry run too)."""
        groups = {proxy.name for proxy in ctx.fleet.proxies} | set(ctx.fleet.remote.converge)
        groups |= set(ctx.fleet.remote.active_proxy_files)
        hosts = sorted({host for group in groups for host in ctx.fleet.ssh_hosts(group)}, key=str)
        results = ctx.remote().run(hosts, "true", write=False)
        bad = failed(results)
        if bad:
            return Check(False, note="; ".join(f"{r.host}: {r.error}" for r in bad))
        return Check.already(f"{len(results)} hosts answer over SSH")


# --- small helpers -------------------------------------------------------------------------------


def _options(ctx: StepContext, kind: type[Any]) -> Any:
    return ctx.options if ctx.options is not None else kind()


def _host(fleet: Fleet) -> str | None:
    name = fleet.dataplane.server_name
    return None if name in ("_", "") else name.split()[0]


def _describe(answers: dict[str, Answer]) -> str:
    return ", ".join(f"{path} {answer.status or answer.error}" for path, answer in answers.items())
