"""The reflector: list Services, diff against the routes kube2proxy owns, apply, then watch.

relist:  list (remember resourceVersion) -> routes owned but no longer asked for are deleted,
         routes asked for but missing or different are written
watch:   from that resourceVersion, with bookmarks and a server-side timeout; events that
         arrived together are applied as one batch; a clean end resumes from the last version
410 Gone (status or ERROR event), a broken stream, or the resync interval -> relist
any other API or Redis error -> backoff with jitter, then relist
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager, closing

from toolforgectl.adapters.kube import Service, ServiceApi, WatchEvent
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core.config import Kube2proxy
from toolforgectl.core.errors import GoneError, KubeError, RouteStoreError, StreamBrokenError
from toolforgectl.core.models import Attribution
from toolforgectl.daemons.kube2proxy.mapping import Route, ServiceMapper
from toolforgectl.daemons.kube2proxy.metrics import Metrics

log = logging.getLogger("kube2proxy")

BACKOFF_FIRST = 0.5
# Who kube2proxy's changes are attributed to in the audit record (`debug history`).
ACTOR = Attribution("kube2proxy")


class Reflector:
    """Keeps the `k8s_services` routes equal to what the listed Services ask for."""

    def __init__(
        self,
        api: ServiceApi,
        store: RouteStore,
        settings: Kube2proxy,
        metrics: Metrics,
        *,
        is_active: Callable[[], bool] = lambda: True,
        interruptible: Callable[[], AbstractContextManager[None]],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api, self.store, self.settings, self.metrics = api, store, settings, metrics
        self.mapper = ServiceMapper(settings, store.destinations)
        self.is_active, self.interruptible, self.sleep = is_active, interruptible, sleep
        self.owned: dict[tuple[str, str], set[str]] = {}  # Service -> registry members it wrote
        self.skipped: dict[tuple[str, str], str] = {}  # Service -> why it has no route (logged once)
        self.failures = 0

    def run_while_active(self) -> None:
        """Relist and watch, recovering from every failure, until this proxy is no longer active."""
        reason = "start"
        while self.is_active():
            try:
                self.watch(self.relist(reason))
                reason = "resync"
            except GoneError as exc:
                log.info("relisting: %s", exc)
                reason = "gone"
            except StreamBrokenError as exc:
                log.warning("relisting: %s", exc)
                reason = "stream_broken"
                self.back_off()
            except RouteStoreError as exc:
                self.metrics.store_errors.inc()
                reason = self.retry_later(exc)
            except KubeError as exc:
                self.metrics.api_errors.inc()
                reason = self.retry_later(exc)

    def relist(self, reason: str) -> str:
        """List every Service, make the owned routes match, and return the version to watch from."""
        started = time.monotonic()
        with self.interruptible():
            services, version = self.api.list(self.settings.label_selector)
        self.metrics.relists.labels(reason).inc()
        self.metrics.synced()
        wanted = self.wanted(services)
        members = self.store.k8s_members()
        for stale in sorted(members - wanted.keys()):
            self.remove(stale)
        current = self.store.all_routes()  # pipelined: a resync that changes nothing stays cheap
        self.write_many([r for r in wanted.values() if _differs(r, current, members)])
        self.metrics.services.set(len(wanted))
        self.metrics.relist_seconds.set(time.monotonic() - started)
        log.info("listed %d Services (%s): %d routed", len(services), reason, len(wanted))
        return version

    def watch(self, version: str) -> None:
        """Apply events from `version` on; return when a resync is due or this proxy went standby."""
        resync_at = time.monotonic() + self.settings.resync_interval
        while time.monotonic() < resync_at:
            with closing(self._batches(version)) as batches:
                for events in batches:
                    if not self.is_active():
                        return
                    self.apply(events)
                    version = events[-1].resource_version or version
            # The server ended the stream (timeoutSeconds): all caught up; resume where we were.
            self.metrics.synced()

    def _batches(self, version: str) -> Generator[list[WatchEvent], None, None]:
        """The watch, read with SIGTERM allowed to interrupt the wait (never a write)."""
        watch = self.api.watch(self.settings.label_selector, version, self.settings.watch_timeout)
        with closing(watch) as stream:
            while True:
                with self.interruptible():
                    events = next(stream, None)
                if events is None:
                    return
                self.metrics.synced()
                yield events

    def apply(self, events: list[WatchEvent]) -> None:
        """Write or remove the routes of the Services in a batch of watch events; for a Service
        changed several times in one batch, its last event wins."""
        started = time.monotonic()
        for event in events:
            self.metrics.events.labels(event.type).inc()
        self.failures = 0  # the API is talking again
        # Each Service's last state in the batch, None once deleted; BOOKMARKs carry no Service.
        latest = {e.service.key: None if e.type == "DELETED" else e.service for e in events if e.service}
        writes: list[Route] = []
        for key, service in latest.items():
            route = self.route_for(service) if service else None
            keep = {route.member} if route else set()
            for stale in self.owned.pop(key, set()) - keep:
                self.remove(stale)
            if route is not None:
                writes.append(route)
                self.owned[key] = keep
        self.write_many(writes)
        for _ in latest:
            self.metrics.apply_seconds.observe(time.monotonic() - started)

    def wanted(self, services: list[Service]) -> dict[str, Route]:
        """The routes the listed Services ask for, by registry member; rebuilds `owned`."""
        self.owned = {}
        wanted: dict[str, Route] = {}
        for service in services:
            route = self.route_for(service)
            if route is not None:
                wanted[route.member] = route
                self.owned[service.key] = {route.member}
        return wanted

    def route_for(self, service: Service) -> Route | None:
        """`service`'s route, or None with a warning logged once per Service and reason."""
        found = self.mapper.route_for(service)
        if isinstance(found, Route):
            self.skipped.pop(service.key, None)
            return found
        if self.skipped.get(service.key) != found.reason:
            log.warning("ignoring Service %s/%s: %s", service.namespace, service.name, found.reason)
            self.metrics.skipped.labels(found.kind).inc()
        self.skipped[service.key] = found.reason
        return None

    def write_many(self, routes: list[Route]) -> None:
        """Point routes at their backends and record ownership, in batched transactions."""
        changes = self.store.set_k8s_routes([(r.member, r.tool, r.route, r.backend) for r in routes], ACTOR)
        for change in changes:
            if change.new is None:  # the route store refused a route past the per-tool cap
                tool, route, cap = change.tool, change.route, self.store.max_routes
                log.warning("%s %s not written: the tool has the most routes allowed (%d)", tool, route, cap)
            elif change.changed:
                self.metrics.routes_written.labels("set").inc()
                log.info("%s %s -> %s", change.tool, change.route, change.new)

    def remove(self, member: str) -> None:
        """Delete the route a registry member stands for, and the member."""
        owned = self.mapper.parse_member(member)
        if owned is None:
            log.warning("forgetting registry member %r: it names no tool's own Service", member)
            self.store.forget_k8s_member(member)
            return
        change = self.store.delete_k8s_route(member, owned.tool, owned.route, ACTOR)
        if change.old is not None:
            self.metrics.routes_written.labels("delete").inc()
            log.info("%s %s removed (was %s)", owned.tool, owned.route, change.old)

    def retry_later(self, exc: Exception) -> str:
        """Log a failed API or Redis call and back off; the relist reason that follows."""
        log.warning("%s; retrying", exc)
        self.back_off()
        return "error"

    def back_off(self) -> None:
        """Sleep a jittered, doubling delay (capped) after consecutive failures."""
        self.failures += 1
        ceiling = min(self.settings.backoff_max, BACKOFF_FIRST * 2 ** (self.failures - 1))
        self.sleep(random.uniform(ceiling / 2, ceiling))


def _differs(route: Route, current: dict[str, dict[str, str]], members: set[str]) -> bool:
    """Whether the store lacks `route`, points it elsewhere, or does not record it as ours."""
    return current.get(route.tool, {}).get(route.route) != route.backend.url or route.member not in members
