"""Which proxy is active by every source, and how each proxy's Redis replicates: what `proxy list`,
`proxy show`, `active-proxy show` and `lab status` print.

The sources that must agree on the active proxy:

    hiera `profile::toolforge::active_proxy_host`   what puppet writes everywhere (the `hiera:`
                                                    section, through adapters/hiera)
    every proxy's active-proxy file                 what its daemons act on (read_active_proxy())
    the floating IP                                 where the public traffic goes (through the
                                                    cloud adapter; '-' without a `cloud:` section)
    the Redis roles                                 the active proxy's Redis is the primary; every
                                                    other proxy's replicates from it, link up

The active proxy is the one every active-proxy file names; when they do not all name the same
proxy of the fleet, the fleet config's `active_proxy` (what a host without a file falls back to).
Every source that says otherwise is a disagreement, in words an operator can act on. Reads only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from toolforgectl.adapters.hiera import open_hiera
from toolforgectl.adapters.routestore import Replication, RouteStore, redacted
from toolforgectl.core import activeproxy
from toolforgectl.core.config import DEFAULT_REDIS_PORT, Fleet, Proxy
from toolforgectl.core.errors import (
    ActiveProxyError,
    HieraError,
    RouteStoreError,
    StepError,
    ToolforgectlError,
)

NOT_YET = "-"  # the floating IP of a fleet without a `cloud:` section (not compared)


@dataclass(frozen=True)
class Source:
    """What one source says: the proxy it names (or the host, when the fleet has no such proxy),
    where it says it, and a problem that keeps it from naming one (None when it does)."""

    where: str
    names: str | None
    problem: str | None = None


@dataclass(frozen=True)
class ProxyState:
    """One proxy: its role, its active-proxy file, and its Redis's part in replication."""

    name: str
    address: str
    role: str  # active | standby
    redis: str
    active_proxy_file: Source
    redis_role: str  # primary | replica | unreachable
    redis_problem: str | None = None
    replicates_from: str | None = None  # a replica's primary, host:port
    link: str | None = None  # up | down (a replica's link to its primary)
    offset: int | None = None
    lag: int | None = None  # how far a standby's offset is behind the active one's
    floating_ip: str = NOT_YET
    agrees: bool = True


@dataclass(frozen=True)
class Survey:
    """Every source, every proxy, and what disagrees."""

    active: str
    fleet_config: str
    hiera: Source
    proxies: list[ProxyState]
    floating_ip: str = NOT_YET
    disagreements: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        """Whether every source names the active proxy and the Redis roles follow it."""
        return not self.disagreements

    def proxy(self, name: str) -> ProxyState:
        """One proxy's state (the fleet config already refused an unknown name)."""
        return next(state for state in self.proxies if state.name == name)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (`--json`)."""
        return {**asdict(self), "agree": self.agree}


def read_active_proxy(proxy: Proxy, fleet: Fleet) -> activeproxy.ActiveProxy:
    """`proxy`'s active-proxy file as its daemons read it (a missing one: the fleet config's).

    Reads the local path: the lab's files, or this host's. The remote adapter replaces this read
    for the files of other hosts."""
    return activeproxy.read(proxy.active_proxy_file, fleet.active_proxy)


def survey(fleet: Fleet) -> Survey:
    """Read every source and every proxy's Redis, and say what disagrees."""
    files = {proxy.name: _file_source(proxy, fleet) for proxy in fleet.proxies}
    named = {source.names for source in files.values()}
    unanimous = len(named) == 1 and next(iter(named)) in {proxy.name for proxy in fleet.proxies}
    first = next(iter(named))
    active = first if unanimous and first is not None else fleet.active_proxy
    replication = {proxy.name: _replication(RouteStore.from_url(proxy.redis)) for proxy in fleet.proxies}
    hiera = _hiera_source(fleet)
    problems = _source_problems(active, hiera, files)
    holder, floating_problem = floating_ip_holder(fleet)
    if floating_problem:
        problems.append(floating_problem)
    elif holder not in (NOT_YET, active):
        problems.append(f"the floating IP points at {holder}, not at the active proxy {active}")
    states = []
    for proxy in fleet.proxies:
        state, trouble = _proxy_state(proxy, fleet, active, files[proxy.name], replication)
        if holder != NOT_YET:
            state = replace(state, floating_ip="here" if holder == proxy.name else "")
            state = replace(state, agrees=state.agrees and (holder == proxy.name) == (proxy.name == active))
        states.append(state)
        problems += trouble
    return Survey(active, fleet.active_proxy, hiera, states, floating_ip=holder, disagreements=problems)


def redis_primary(fleet: Fleet) -> str:
    """The proxy whose Redis is the primary (the active one, for failover and for what a new proxy
    replicates from); StepError unless exactly one of the proxies' Redis is."""
    primaries = []
    for proxy in fleet.proxies:
        try:
            if RouteStore.from_url(proxy.redis).replication().is_primary:
                primaries.append(proxy.name)
        except ToolforgectlError:
            continue
    if len(primaries) == 1:
        return primaries[0]
    named = ", ".join(primaries) or "none"
    raise StepError(
        f"cannot tell which proxy is active: the primaries among the proxies' Redis are {named};"
        " see `toolforgectl proxy list`"
    )


def floating_ip_holder(fleet: Fleet) -> tuple[str, str | None]:
    """Which proxy the floating IP points at (NOT_YET without a `cloud:` section), and a problem
    reading it (None when there is none)."""
    if fleet.cloud is None:
        return NOT_YET, None
    from toolforgectl.adapters.cloud import Cloud  # openstacksdk: only for a fleet with a cloud

    settings = fleet.cloud
    try:
        cloud = Cloud.connect(settings)
        try:
            fixed = cloud.floating_ip(settings.floating_ip).fixed_ip
            for proxy in fleet.proxies:
                if fixed and cloud.server_port(settings.server(proxy.name)).fixed_ip == fixed:
                    return proxy.name, None
        finally:
            cloud.close()
    except ToolforgectlError as exc:
        return "unreadable", f"the floating IP {settings.floating_ip} cannot be read: {exc}"
    where = fixed or "nothing"
    return where, f"the floating IP {settings.floating_ip} points at {where}, which is none of the proxies"


def _file_source(proxy: Proxy, fleet: Fleet) -> Source:
    where = f"{proxy.name}:{proxy.active_proxy_file}"
    try:
        found = read_active_proxy(proxy, fleet)
    except ActiveProxyError as exc:
        return Source(where, None, str(exc))
    if found.host is None:
        return Source(where, None, "empty: the kill switch, registration is off")
    if found.source != proxy.active_proxy_file:  # no file: its daemons follow the fleet config
        where += " (missing: the fleet config's active_proxy)"
    return Source(where, _proxy_name(fleet, found.host))


def _hiera_source(fleet: Fleet) -> Source:
    """What the fleet's hiera (its `hiera:` section, through the hiera adapter) says."""
    if fleet.hiera is None:
        return Source("-", None, "no hiera: section in the fleet config (not compared)")
    hiera = open_hiera(fleet.hiera)
    key = fleet.hiera.active_proxy_key
    try:
        value = hiera.get(key)
        if not isinstance(value, str) or not value.strip():
            return Source(hiera.where, None, f"{key} is not set")
        return Source(hiera.where, _proxy_name(fleet, activeproxy.host(value.strip(), hiera.where)))
    except (HieraError, ActiveProxyError) as exc:
        return Source(hiera.where, None, " ".join(str(exc).split()))


def _proxy_name(fleet: Fleet, host: str) -> str:
    """The fleet's name for the proxy `host` means; `host` itself when the fleet has none."""
    proxy = fleet.proxy_at(host)
    return proxy.name if proxy else host


def _source_problems(active: str, hiera: Source, files: dict[str, Source]) -> list[str]:
    problems = []
    if hiera.names is not None and hiera.names != active:
        problems.append(f"hiera ({hiera.where}) names {hiera.names}, not the active proxy {active}")
    for source in files.values():
        if source.problem:
            problems.append(f"active-proxy file {source.where}: {source.problem}")
        elif source.names != active:
            problems.append(f"active-proxy file {source.where} names {source.names}, not {active}")
    return problems


def _replication(store: RouteStore) -> Replication | str:
    try:
        return store.replication()
    except RouteStoreError as exc:
        return str(exc)


def _proxy_state(
    proxy: Proxy, fleet: Fleet, active: str, file: Source, replication: dict[str, Replication | str]
) -> tuple[ProxyState, list[str]]:
    """One proxy's state, and what in it disagrees with `active` being the active proxy."""
    role = "active" if proxy.name == active else "standby"
    base = ProxyState(proxy.name, proxy.address, role, redacted(proxy.redis), file, "unreachable")
    base = replace(base, agrees=file.problem is None and file.names == active)
    mine, leader = replication[proxy.name], replication[active]
    if isinstance(mine, str):
        return replace(base, redis_problem=mine, agrees=False), [f"{proxy.name}'s Redis: {mine}"]
    fields: dict[str, Any] = {"redis_role": mine.role, "offset": mine.offset}
    problems = []
    if mine.is_primary and role == "standby":
        problems.append(f"{proxy.name}'s Redis is a primary, but {proxy.name} is a standby (two primaries)")
    if mine.primary is not None:
        fields["replicates_from"] = f"{mine.primary[0]}:{mine.primary[1]}"
        fields["link"] = "up" if mine.link_up else "down"
        problems += _replica_problems(proxy, mine, fleet.proxy(active), role)
        if isinstance(leader, Replication) and mine.offset >= 0:
            fields["lag"] = leader.offset - mine.offset
    return replace(base, **fields, agrees=base.agrees and not problems), problems


def _replica_problems(proxy: Proxy, mine: Replication, active: Proxy, role: str) -> list[str]:
    if role == "active":
        return [f"{proxy.name}'s Redis is a replica, but {proxy.name} is the active proxy"]
    problems = []
    if mine.primary != redis_address(active.redis):
        where = f"{mine.primary[0]}:{mine.primary[1]}" if mine.primary else "?"
        problems.append(f"{proxy.name}'s Redis replicates from {where}, not from the active {active.name}'s")
    if not mine.link_up:
        problems.append(f"{proxy.name}'s Redis has its replication link down")
    return problems


def redis_address(url: str) -> tuple[str, int]:
    """(host, port) of a Redis URL, as INFO replication names a replica's primary."""
    parts = urlsplit(url)
    return (parts.hostname or "127.0.0.1", parts.port or DEFAULT_REDIS_PORT)
