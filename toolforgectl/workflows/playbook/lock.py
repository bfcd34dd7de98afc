"""The lock of a playbook run: one key per fleet and operation on EVERY proxy's Redis.

An operator on another bastion sees the lock on whichever proxy they look at. It is taken on all
proxies before anything changes (on a conflict, what was taken is given back and the error names
the holder and the expiry), renewed before every step, and released when the run ends, however
it ends (a SIGKILL leaves it to expire after `operations.lock_ttl`; `--resume` of that same run
takes it over). A replica refuses writes: there the primary's lock arrives by replication, so
the replica is only read, to see another holder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from toolforgectl.core.errors import LockHeldError, ReadOnlyReplicaError, RouteStoreError

if TYPE_CHECKING:
    from toolforgectl.adapters.routestore import RouteStore


@dataclass
class FleetLock:
    """The lock `name` of run `run` on every proxy's route store (`stores`: proxy name -> store)."""

    stores: dict[str, RouteStore]
    name: str
    run: str
    actor: str
    ttl: float
    taken: list[str] = field(default_factory=list)

    def holder(self) -> str:
        """What the lock's value says: who (user@host pid N), which run, and until when."""
        expires = datetime.fromtimestamp(time.time() + self.ttl, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        value = {"holder": f"{self.actor} pid {os.getpid()}", "run": self.run, "expires": expires}
        return json.dumps(value, sort_keys=True)

    def take(self) -> None:
        """Take the lock on every proxy, or none: LockHeldError names the other holder."""
        holder = self.holder()
        for proxy, store in self.stores.items():
            try:
                other = self._hold(proxy, store, holder)
            except RouteStoreError as exc:
                self.release()
                raise type(exc)(f"cannot take the lock {self.name!r} on {proxy}: {exc}") from None
            if other is not None:
                self.release()
                raise LockHeldError(describe(self.name, proxy, other))

    def check(self) -> None:
        """Without taking it (a dry run): fail as `take` would when another run holds the lock."""
        for proxy, store in self.stores.items():
            other = store.lock_holder(self.name)
            if other is not None and _run_of(other) != self.run:
                raise LockHeldError(describe(self.name, proxy, other))

    def renew(self) -> list[str]:
        """Extend the lock (before each step); LockHeldError if another run has it now. Returns
        the problems met: a proxy that stopped answering mid-run keeps its lock until it expires.

        Every proxy, not only those it was taken on: a failover promotes a replica, which then
        holds the replicated lock as a primary and must be renewed (and released) there."""
        holder, problems = self.holder(), []
        for proxy, store in self.stores.items():
            try:
                other = store.hold_lock(self.name, self.run, holder, self._ttl_ms())
            except ReadOnlyReplicaError:
                if proxy in self.taken:
                    self.taken.remove(proxy)  # it became a replica (a failover): its primary holds it
                continue
            except RouteStoreError as exc:
                problems.append(f"could not renew the lock on {proxy}: {exc}")
                continue
            if other is not None:
                raise LockHeldError(f"lost the lock: {describe(self.name, proxy, other)}")
            if proxy not in self.taken:
                self.taken.append(proxy)
        return problems

    def release(self) -> list[str]:
        """Give the lock back on every proxy that holds it for this run (a replica promoted during
        the run holds it as a primary now); the problems met (a proxy gone meanwhile)."""
        problems = []
        for proxy, store in self.stores.items():
            try:
                store.release_lock(self.name, self.run)  # only deletes this run's lock
            except ReadOnlyReplicaError:
                pass  # a replica: its primary's release reaches it
            except RouteStoreError as exc:
                if proxy in self.taken:
                    problems.append(f"could not release the lock on {proxy} (it expires by itself): {exc}")
        self.taken.clear()
        return problems

    def _hold(self, proxy: str, store: RouteStore, holder: str) -> str | None:
        try:
            other = store.hold_lock(self.name, self.run, holder, self._ttl_ms())
        except ReadOnlyReplicaError:
            found = store.lock_holder(self.name)
            return found if found is not None and _run_of(found) != self.run else None
        if other is None:
            self.taken.append(proxy)
        return other

    def _ttl_ms(self) -> int:
        return int(self.ttl * 1000)


def _run_of(value: str) -> str:
    try:
        found = json.loads(value)
    except ValueError:
        return ""
    return str(found.get("run", "")) if isinstance(found, dict) else ""


def describe(name: str, proxy: str, value: str) -> str:
    """One line naming who holds lock `name` (as stored on `proxy`) and until when."""
    try:
        held = json.loads(value)
        who, run, until = held["holder"], held["run"], held["expires"]
    except (ValueError, KeyError, TypeError):
        return f"the lock {name!r} is held on {proxy} by something else: {value[:200]!r}"
    return f"the lock {name!r} is held by {who} (run {run}) until {until} (seen on {proxy})"
