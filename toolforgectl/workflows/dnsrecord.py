"""The failover's DNS step: the public name's record leads to the new active proxy, and the resolvers agree.

Inside the cloud the floating IP cannot be reached, so the internal resolvers answer the public
name (`dns.name`) with the active proxy's own address. After a failover they must answer the new
one's. The record is changed through Designate (compare-and-swap on the addresses the plan showed)
or by the site's configured command, and then every resolver of `dns.resolvers` is asked directly
until each answers the new address, within the step's timeout.

"Already done" means the target state holds where hosts see it: the record (Designate) names the
new address and every resolver answers it. A record already changed whose resolvers lag is not
written again; the step only waits for them.
"""

from __future__ import annotations

import shlex

from toolforgectl.adapters import dns as resolvers
from toolforgectl.adapters.dns import Answer
from toolforgectl.core.config import Dns, Proxy
from toolforgectl.core.errors import StepError, TimedOutError
from toolforgectl.core.waiting import wait_until
from toolforgectl.workflows.failover import new, old
from toolforgectl.workflows.playbook import steps
from toolforgectl.workflows.playbook.context import StepContext
from toolforgectl.workflows.playbook.steps import Change, Check, Outcome

POLL_INTERVAL = 0.2


def _section(ctx: StepContext) -> Dns:
    """The `dns:` section (check reports "done" without one, so apply and verify never run then)."""
    if ctx.fleet.dns is None:
        raise StepError(f"{ctx.fleet.source}: no `dns:` section, so no DNS record to change")
    return ctx.fleet.dns


def _address(dns: Dns, proxy: Proxy) -> str:
    return dns.address(proxy.name, proxy.address)


def _ask_all(dns: Dns) -> list[Answer]:
    return [resolvers.ask(dns.name, resolver) for resolver in dns.resolver_addresses()]


def _lagging(dns: Dns, address: str) -> list[Answer]:
    """The resolvers that do not answer exactly `address` for the name."""
    return [answer for answer in _ask_all(dns) if not answer.names(address)]


def _target(dns: Dns, backend: str) -> str:
    return f"DNS {dns.name} ({backend})"


@steps.register("update-dns")
class UpdateDns:
    """The `dns:` record names `to`'s address, and every listed resolver answers it."""

    def check(self, ctx: StepContext) -> Check:
        """Read the record (Designate) and ask every resolver."""
        dns = ctx.fleet.dns
        if dns is None:
            return Check.already("no `dns:` section configured: no DNS record to change")
        want = _address(dns, new(ctx))
        lagging = _lagging(dns, want)
        if dns.backend == "designate":
            record = ctx.cloud().dns_record(dns.zone, dns.name)
            if record.records == (want,) and not lagging:
                return Check.already(f"{dns.name} names {want} ({new(ctx).name}); every resolver answers it")
            note = f"{dns.name} holds {', '.join(record.records) or 'nothing'}; then ask {_names(dns)}"
            return Check.would(Change(_target(dns, "Designate"), list(record.records), [want]), note=note)
        if not lagging:
            return Check.already(f"every resolver answers {want} ({new(ctx).name}) for {dns.name}")
        argv = self._command(ctx, dns)
        note = f"run `{shlex.join(argv)}`; then ask {_names(dns)}"
        return Check.would(Change(_target(dns, "command"), list(lagging[0].addresses), [want]), note=note)

    def apply(self, ctx: StepContext) -> Outcome:
        """Designate: replace the record's addresses if it still holds what the plan showed (a
        record that names `to` already is left alone). Command: run it."""
        dns = _section(ctx)
        want = _address(dns, new(ctx))
        if dns.backend == "command":
            argv = self._command(ctx, dns)
            ctx.progress(f"running `{shlex.join(argv)}`")
            resolvers.run(argv, timeout=ctx.entry.timeout)
            ctx.record(_target(dns, "command"), _address(dns, old(ctx)), [want])
            return Outcome()
        now = ctx.cloud().dns_record(dns.zone, dns.name)
        if now.records == (want,):
            return Outcome(note=f"{dns.name} names {want} already; waiting for the resolvers")
        planned = ctx.planned.changes[0].old if ctx.planned and ctx.planned.changes else now.records
        changed = ctx.cloud().update_dns_record(dns.zone, dns.name, (want,), expect=tuple(planned))
        ctx.record(_target(dns, "Designate"), list(now.records), list(changed.records))
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        """Ask every resolver until each answers `to`'s address, within the step's timeout; the
        error names each resolver that does not and what it answered."""
        dns = _section(ctx)
        want = _address(dns, new(ctx))
        seen: list[Answer] = []

        def agreed() -> bool:
            seen[:] = _lagging(dns, want)
            return not seen

        try:
            wait_until(agreed, f"the resolvers to answer {want}", ctx.entry.timeout, POLL_INTERVAL)
        except TimedOutError:
            wrong = "; ".join(f"resolver {a.resolver} answers {a}" for a in seen)
            raise StepError(
                f"after {ctx.entry.timeout:g}s, not every resolver answers {want} ({new(ctx).name})"
                f" for {dns.name}: {wrong}"
            ) from None
        ctx.progress(f"{_names(dns)} answer{'s' if len(dns.resolvers) == 1 else ''} {want} for {dns.name}")

    def instructions(self, ctx: StepContext) -> str:
        """How to change the record by hand."""
        dns = ctx.fleet.dns
        if dns is None:
            return "nothing (no `dns:` section)"
        want = _address(dns, new(ctx))
        if dns.backend == "command":
            how = f"`{shlex.join(self._command(ctx, dns))}`"
        else:
            how = f"`openstack recordset set --record {want} {dns.zone} {dns.name}`"
        return (
            f"make {dns.name} name {want} ({new(ctx).name}) with {how}, then check `dig @RESOLVER {dns.name}`"
        )

    @staticmethod
    def _command(ctx: StepContext, dns: Dns) -> list[str]:
        return resolvers.command_line(
            dns.command,
            name=dns.name,
            zone=dns.zone,
            address=_address(dns, new(ctx)),
            old_address=_address(dns, old(ctx)),
        )


def _names(dns: Dns) -> str:
    return ", ".join(dns.resolvers)
