"""Who gets one of proxylistener's connection slots, and how often a refusal is logged.

One host must not be able to lock everyone else out of registering: its idle connections used to
fill the overall cap (`max_connections`), and every other caller was told "busy". So each source
may hold at most `max_connections_per_source` connections, checked before the overall cap; a
flooding host then uses up its own share and nobody else's. A source is one IPv4 address (also
when a dual-stack listener sees it IPv4-mapped) or one IPv6 /64, the block a single host usually
gets and can pick addresses from at will.

Refusals are cheap for a flood to cause, so their log lines are rate-limited per source: the
first refusal is logged, the next ones within `interval` only counted, and that count is reported
in the source's next line. The metrics count every refusal.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from toolforgectl.daemons.proxylistener import authorize

IPV6_HOST_PREFIX = 64
# Sources whose refusals are remembered at once; past it (a flood from very many addresses), the
# rest share one log budget, so the memory stays bounded and the log quiet.
LOG_SOURCES_MAX = 4096
OTHER_SOURCES = "other sources"

Cap = Literal["per_source", "total"]


def source_of(peer: str) -> str:
    """The source a connection from `peer` counts under: the IPv4 address or the IPv6 /64."""
    found = authorize.address(peer)
    if isinstance(found, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((found, IPV6_HOST_PREFIX), strict=False))
    return str(found)


@dataclass
class Slots:
    """The connections being served, per source and overall, against their two caps."""

    total: int
    per_source: int
    held: Counter[str] = field(default_factory=Counter)
    in_use: int = 0

    def take(self, source: str) -> Cap | None:
        """Take a slot for `source`: None if taken, else the cap that refused it."""
        if self.held[source] >= self.per_source:
            return "per_source"  # checked first: a flood from one source is refused as such
        if self.in_use >= self.total:
            return "total"
        self.held[source] += 1
        self.in_use += 1
        return None

    def give_back(self, source: str) -> None:
        """Free the slot `take` gave `source`."""
        self.in_use -= 1
        self.held[source] -= 1
        if self.held[source] <= 0:
            del self.held[source]  # only sources with a connection open stay in memory


@dataclass
class RefusalLog:
    """At most one log line per source per `interval`; the refusals in between are counted."""

    interval: float
    clock: Callable[[], float] = time.monotonic
    # source -> (when its last line was written, refusals since then that were not logged)
    last: dict[str, tuple[float, int]] = field(default_factory=dict)
    pruned_at: float = float("-inf")

    def due(self, source: str) -> int | None:
        """None if this refusal of `source` is not to be logged; else how many were left out
        since its previous line."""
        now = self.clock()
        if source not in self.last and len(self.last) >= LOG_SOURCES_MAX:
            if now - self.pruned_at >= self.interval:  # at most once an interval: it walks them all
                self.last = {key: seen for key, seen in self.last.items() if now - seen[0] < self.interval}
                self.pruned_at = now
            if len(self.last) >= LOG_SOURCES_MAX:
                source = OTHER_SOURCES
        written, left_out = self.last.get(source, (now - self.interval, 0))
        if now - written < self.interval:
            self.last[source] = (written, left_out + 1)
            return None
        self.last[source] = (now, 0)
        return left_out
