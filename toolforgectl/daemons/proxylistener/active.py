"""Which route store a request writes to: the active proxy's, wherever the request arrived.

Clients find the active proxy through /etc/active-proxy, which a failover rewrites host by host;
until every host has the new one, some still register with the old proxy. So a proxylistener
reached on a proxy that is not the active one does not refuse: it writes to the active proxy's
Redis (its address from the fleet config's `proxies`), where the write counts and from where
replication brings it back to this proxy. Per request, by the one policy of core/activeproxy.py:

    the active-proxy file                      the request writes to
    names this proxy                           this proxy's Redis (`proxylistener.redis`)
    names another proxy of the fleet           that proxy's Redis (`proxies[].redis`)
    is empty (the kill switch)                 nowhere: "Registration is switched off."
    names a host the fleet does not list,      this proxy's Redis: a standby's is a read-only
      is broken, or this proxy is not known      replica, which refuses, and the standby reply
      (no `--proxy`, no proxy named as this      names the active proxy if the file does
      host in the fleet config)

If the Redis written to turns out to be a read-only replica although the file names its proxy as
active, a failover is between promoting the new primary and rewriting the files: the reply says
"try again", which clients retry on, so the registration lands once the files agree.

A proxy added after this daemon started (`deploy proxy` writes it to `proxies_dir`) is not in the
fleet it loaded: when the file names a host the fleet does not list, the fleet config is read
again (at most once per RELOAD_SECONDS, so a bogus name costs no file read per request).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import activeproxy, wire
from toolforgectl.core.config import Fleet, Proxy
from toolforgectl.core.errors import ActiveProxyError, ToolforgectlError

log = logging.getLogger("proxylistener")

SWITCHED_OFF = wire.sentence("Registration is switched off.")
RELOAD_SECONDS = 5.0
MOVING = wire.sentence("The active proxy's route store is read-only (a failover is under way); try again.")


@dataclass(frozen=True)
class Target:
    """Where one request writes, and what to answer if that Redis refuses as a read-only replica."""

    store: RouteStore
    read_only_reply: bytes
    proxy: str | None = None  # the other proxy whose Redis this is; None: this proxy's own


@dataclass
class ActiveRoute:
    """Picks the route store of the active proxy for each request (the table above)."""

    own: RouteStore
    file: str
    fleet: Fleet | None = None
    me: Proxy | None = None
    connect: Callable[[str], RouteStore] = RouteStore.from_url
    reload: Callable[[], Fleet | None] | None = None  # reads the fleet config again
    _stores: dict[str, RouteStore] = field(default_factory=dict)
    _reloaded_at: float = float("-inf")

    def target(self) -> Target | None:
        """The store this request writes to; None when registration is switched off."""
        try:
            active = activeproxy.read(self.file, self.fleet.active_proxy if self.fleet else None)
        except ActiveProxyError as exc:
            log.warning("cannot tell which proxy is active, so writing to this proxy's Redis: %s", exc)
            return Target(
                self.own, wire.sentence("This proxy is a standby; the active proxy is not known here.")
            )
        if active.host is None:
            return None
        standby = Target(self.own, wire.sentence(f"This proxy is a standby; register with {active.host}."))
        proxy = self._proxy_at(active.host)
        if proxy is None:
            return standby
        if self.me is not None and proxy.name == self.me.name:
            return Target(self.own, MOVING)
        return Target(self._store(proxy.redis), MOVING, proxy.name)

    def _proxy_at(self, host: str) -> Proxy | None:
        """The fleet's proxy that `host` names; the fleet config is read again for a name it lacks."""
        if not self.fleet or not self.me:
            return None
        proxy = self.fleet.proxy_at(host)
        if proxy is None and self.reload and time.monotonic() - self._reloaded_at >= RELOAD_SECONDS:
            self._reloaded_at = time.monotonic()
            try:
                fleet = self.reload()
            except (ToolforgectlError, OSError) as exc:  # a broken config must not stop registrations
                log.warning("cannot read the fleet config again for proxy %r: %s", host, exc)
                return None
            if fleet is not None:
                self.fleet = fleet
                proxy = fleet.proxy_at(host)
                if proxy is not None:
                    log.info("the fleet config now lists %s, the active proxy", proxy.name)
        return proxy

    def _store(self, url: str) -> RouteStore:
        """One store (one connection pool) per Redis, made on first use."""
        if url not in self._stores:
            self._stores[url] = self.connect(url)
        return self._stores[url]
