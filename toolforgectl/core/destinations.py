"""Where a fleet's routes may point: never back at the proxies, loopback only where tools run there.

A route's backend receives every public request for its tool. Pointed at a proxy's own Redis,
any visitor could write Redis keys; at the proxy's TLS port, requests would loop until the
workers' connections ran out. So besides the address classes `validate.backend` refuses
everywhere (unspecified, multicast, link-local, broadcast), a fleet refuses:

* loopback (127.0.0.0/8, ::1) unless `dataplane.allow_loopback_backends` says the tools run on
  the proxy host itself (the lab): on a proxy VM, loopback is the proxy;
* every address the fleet config gives a proxy or one of its services (`proxies[].address`, the
  Redis URLs, the daemons' listen and metrics addresses, `dataplane.internal_address`), on any
  port; where loopback backends are allowed, a loopback one only on the service ports;
* the proxies' service ports (nginx's http/https/internal ports, Redis, proxylistener and its
  metrics, kube2proxy's and webservicemonitor's metrics) on those addresses and on loopback.

The route store, proxylistener and kube2proxy check every write with `check`; the data plane runs
the same rule (lua/urlproxy/backend.lua, with `lua_settings()`) on routes other writers stored and
on the addresses a backend's host name resolves to.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from toolforgectl.core import validate
from toolforgectl.core.config import DEFAULT_REDIS_PORT, Fleet
from toolforgectl.core.errors import ValidationError
from toolforgectl.core.models import Backend, Host

_LOCALHOST = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def unmapped(host: Host) -> Host:
    """`host` with an IPv4-mapped IPv6 address (`::ffff:10.0.0.5`) turned back into IPv4."""
    if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped is not None:
        return host.ipv4_mapped
    return host


def _is_loopback(host: Host) -> bool:
    return not isinstance(host, str) and host.is_loopback


@dataclass(frozen=True)
class Destinations:
    """The destination rule of one fleet. The default knows no proxy and refuses loopback."""

    allow_loopback: bool = False
    proxy_hosts: frozenset[Host] = frozenset()
    service_ports: frozenset[int] = frozenset()

    @classmethod
    def of_fleet(cls, fleet: Fleet) -> Destinations:
        """The rule the fleet config implies: its proxies' addresses and service ports."""
        plane, listener, kube = fleet.dataplane, fleet.proxylistener, fleet.kube2proxy
        redis_urls = [proxy.redis for proxy in fleet.proxies] + [listener.redis]
        texts = [proxy.address for proxy in fleet.proxies]
        texts += [urlsplit(url).hostname or "" for url in redis_urls]
        texts += [listener.listen, listener.metrics_address, plane.internal_address, kube.metrics_address]
        ports = {plane.http_port, plane.https_port, plane.internal_port, listener.port}
        # webservicemonitor's metrics too: in the lab (loopback backends allowed) it runs beside the
        # proxy, and a tool pointed at it published the monitor's metrics. Its address is not added:
        # where it runs on a tools' host, that address must stay open to the tools there.
        ports |= {listener.metrics_port, kube.metrics_port, fleet.webservice.metrics_port} - {0}
        ports |= {_port_of(url) for url in redis_urls}
        hosts = {host for text in texts for host in _hosts(text)}
        return cls(plane.allow_loopback_backends, frozenset(hosts), frozenset(ports))

    def refusal(self, host: Host, port: int) -> str | None:
        """Why `host`:`port` is no place for a tool in this fleet (completes "points at ..."), or None."""
        host = unmapped(host)
        own, loopback = host in self.proxy_hosts, _is_loopback(host)
        if (own or loopback) and port in self.service_ports:
            return f"port {port} of {host}: a proxy's service"
        if loopback and not self.allow_loopback:
            return (
                "a loopback address, which on a proxy is the proxy itself"
                " (dataplane.allow_loopback_backends is off)"
            )
        if own and not (loopback and self.allow_loopback):
            return f"{host}: a proxy's own address"
        return None

    def check(self, backend: Backend) -> Backend:
        """`backend` if a route may point there; else ValidationError saying why."""
        why = self.refusal(backend.host, backend.port)
        if why:
            raise ValidationError(f"backend URL {validate.shown(backend.url)} points at {why}")
        return backend

    def lua_settings(self) -> dict[str, Any]:
        """The data plane's copy (lua/urlproxy/backend.lua): addresses as it spells them, IPv6 in
        full (`0000:...:0001`), names in lower case; the ports as numbers."""
        spelled = sorted(
            host.exploded if isinstance(host, ipaddress.IPv6Address) else str(host)
            for host in self.proxy_hosts
        )
        return {"proxy_addresses": spelled, "proxy_ports": sorted(self.service_ports)}


def _hosts(text: str) -> list[Host]:
    """The hosts an address setting names: none for empty or wildcard (0.0.0.0 listens everywhere:
    those addresses are the proxies' own, or loopback), both loopbacks for `localhost`."""
    text = text.strip("[]")
    if not text:
        return []
    if text == "localhost":
        return list(_LOCALHOST)
    try:
        found = unmapped(ipaddress.ip_address(text))
    except ValueError:
        try:
            return [validate.host_name(text, text)]
        except ValidationError:
            return []  # not an address a backend could name either
    return [] if isinstance(found, str) or found.is_unspecified else [found]


def _port_of(redis_url: str) -> int:
    try:
        return urlsplit(redis_url).port or DEFAULT_REDIS_PORT
    except ValueError:
        return DEFAULT_REDIS_PORT
