"""Replication as the route store sees it: a server's role and offset, and waiting for a replica.

A standby proxy's Redis copies the active one's. `RouteStore.replication()` reads a server's role,
link state and offset; `pause_writes`/`unpause`, `promote`, `replicate_from` (RouteStore) and
`wait_caught_up` (here) are the steps a failover moves the primary with, losing no acknowledged write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from toolforgectl.core.errors import TimedOutError
from toolforgectl.core.waiting import wait_until

if TYPE_CHECKING:
    from toolforgectl.adapters.routestore.store import RouteStore


@dataclass(frozen=True)
class Replication:
    """One Redis's part in replication, as its INFO replication section says.

    `offset` is how far into the replication stream the server is: for a primary, what it has
    written (master_repl_offset); for a replica, what it has applied (slave_repl_offset). A replica
    holds every write its primary acknowledged once its offset equals the primary's.
    """

    role: Literal["primary", "replica"]
    offset: int
    primary: tuple[str, int] | None = None  # a replica's primary (host, port)
    link_up: bool | None = None  # a replica's link to its primary (master_link_status); None: primary
    replicas: int = 0  # a primary's connected replicas

    @property
    def is_primary(self) -> bool:
        """Whether this Redis takes writes."""
        return self.role == "primary"


def parse_replication(info: Mapping[str, Any]) -> Replication:
    if info.get("role") == "master":
        return Replication(
            "primary", int(info.get("master_repl_offset", 0)), replicas=int(info.get("connected_slaves", 0))
        )
    primary = (str(info.get("master_host", "")), int(info.get("master_port", 0)))
    # Before its first sync a replica reports no slave_repl_offset (or -1): it holds nothing yet.
    offset = max(int(info.get("slave_repl_offset", -1)), -1)
    return Replication("replica", offset, primary, info.get("master_link_status") == "up")


def wait_caught_up(
    primary: RouteStore, replica: RouteStore, timeout: float = 10.0, interval: float = 0.02
) -> int:
    """Return the offset once `replica`'s link is up and its offset equals `primary`'s.

    Meant with the primary's writes paused (`pause_writes`): then the offset stays put and, once
    reached, the replica holds every write the primary acknowledged. TimedOutError otherwise."""

    def caught_up() -> tuple[int, ...]:  # a tuple: offset 0 is an answer, () is "not yet"
        wanted, state = primary.replication().offset, replica.replication()
        return (wanted,) if state.link_up and state.offset == wanted else ()

    what = f"{replica.url} to reach the replication offset of {primary.url}"
    return wait_until(caught_up, what, timeout, interval, TimedOutError)[0]
