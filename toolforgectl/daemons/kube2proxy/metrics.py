"""kube2proxy's Prometheus metrics, in a registry of its own so tests and benchmarks can run several."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    """Everything an operator needs to see kube2proxy keeping up, or not."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("kube2proxy_events", "Watch events received, by type", ["type"], registry=r)
        self.relists = Counter("kube2proxy_relists", "Full lists of Services, by why", ["reason"], registry=r)
        self.routes_written = Counter(
            "kube2proxy_routes_written", "Route writes that changed the store", ["action"], registry=r
        )
        self.skipped = Counter("kube2proxy_services_skipped", "Services given no route", ["kind"], registry=r)
        self.api_errors = Counter("kube2proxy_api_errors", "Failed Kubernetes API calls", registry=r)
        self.store_errors = Counter("kube2proxy_store_errors", "Failed route store writes", registry=r)
        self.apply_seconds = Histogram(
            "kube2proxy_event_apply_seconds",
            "From a watch event read to its route written",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.relist_seconds = Gauge(
            "kube2proxy_last_relist_seconds", "How long the last list-and-diff took", registry=r
        )
        self.last_sync = Gauge(
            "kube2proxy_last_sync_timestamp_seconds",
            "When the API last told us something (list, event or bookmark); now minus this is the lag",
            registry=r,
        )
        self.services = Gauge("kube2proxy_services", "Services routed after the last relist", registry=r)
        self.active = Gauge("kube2proxy_active", "1 while this proxy is the active one", registry=r)
        self.active_checks = Counter(
            "kube2proxy_active_checks", "Times this proxy re-read whether it is the active one", registry=r
        )

    def synced(self) -> None:
        """Record that the API just spoke to us."""
        self.last_sync.set(time.time())

    def serve(self, address: str, port: int) -> None:
        """Expose /metrics on `address:port` (in a background thread); port 0 means not at all."""
        if port:
            start_http_server(port, addr=address, registry=self.registry)
