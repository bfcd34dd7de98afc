"""What a proven caller may do: the proxylistener's authorization rules, as pure functions.

Each rule closes one hole the original left open (docs/security.md has the threat model):
the destination must be the caller's own IP address (or in an allow-listed backend network) on an
unprivileged port, and never a proxy's address or service (core/destinations.py); `unregister`
only removes a backend on the caller's address; reserved names
need an explicit grant; ident answers count only from the networks whose identd we trust.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from toolforgectl.adapters.routestore import ADMIN_TOOL
from toolforgectl.core import wire
from toolforgectl.core.config import ProxyListener
from toolforgectl.core.destinations import Destinations, unmapped
from toolforgectl.core.errors import RefusedError
from toolforgectl.core.models import Backend, IPAddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Policy:
    """The authorization settings, parsed once at start-up."""

    backend_networks: tuple[IPNetwork, ...] = ()
    ident_networks: tuple[IPNetwork, ...] = ()
    reserved: frozenset[str] = frozenset({ADMIN_TOOL})
    granted: frozenset[str] = frozenset()
    destinations: Destinations = field(default_factory=Destinations)

    @classmethod
    def from_settings(cls, settings: ProxyListener, destinations: Destinations | None = None) -> Policy:
        """The policy the `proxylistener` config section describes, under the fleet's destination
        rule (`Destinations.of_fleet`; without one, the strict default)."""
        return cls(
            backend_networks=_networks(settings.backend_networks),
            ident_networks=_networks(settings.ident_networks),
            reserved=frozenset({ADMIN_TOOL, *settings.reserved}),
            granted=frozenset(settings.granted),
            destinations=destinations or Destinations(),
        )


def _networks(texts: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


def address(text: str) -> IPAddress:
    """An IP address, with IPv4-mapped IPv6 (a dual-stack listener's view) turned back into IPv4."""
    found = ipaddress.ip_address(text.strip("[]"))
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def check_tool(policy: Policy, tool: str) -> None:
    """Reserved names (`admin`, ...) serve every unknown path: only granted tools may register them."""
    if tool in policy.reserved and tool not in policy.granted:
        raise RefusedError(f"The name {tool} is reserved; ask an administrator for a grant.")


def check_ident_source(policy: Policy, peer: str) -> None:
    """Ident proves nothing from a host whose root we do not control: trust only listed networks."""
    if not any(address(peer) in network for network in policy.ident_networks):
        raise RefusedError(f"Ident is not accepted from {peer}; send your tool's token line.")


def check_destination(policy: Policy, destination: Backend, peer: str) -> None:
    """A tool may only route to itself: the caller's own address, or an allow-listed network; and
    never to a proxy's own address or service, even when the caller runs there."""
    host, port = unmapped(destination.host), destination.port
    if not wire.PORT_MIN <= port <= wire.PORT_MAX:
        raise RefusedError(f"Destination port {port} is outside {wire.PORT_MIN}-{wire.PORT_MAX}.")
    if isinstance(host, str):
        # A name proves nothing about who answers there, now or after its next DNS change.
        raise RefusedError(f"Destination {host} is a host name; register your IP address {peer}.")
    if not (host == address(peer) or any(host in network for network in policy.backend_networks)):
        raise RefusedError(f"Destination {host} is not your address {peer}.")
    why = policy.destinations.refusal(host, port)
    if why:
        raise RefusedError(f"Destination {destination.url} points at {why}.")


def check_owned(policy: Policy, current: str, peer: str) -> None:
    """`unregister` removes only a backend on the caller's address, not a newer job's elsewhere.

    `current` is what the store holds, maybe written by another client (even with a host name),
    so it is read leniently: anything that is not on the caller's address stays.
    """
    try:
        host = address(urlsplit(current).hostname or "")
    except ValueError:
        raise RefusedError(f"The route does not point at your address {peer}; not removed.") from None
    if host != address(peer):
        raise RefusedError(f"The route points at {host}, not at your address {peer}; not removed.")
