"""webservicemonitor's Prometheus metrics, in a registry of its own (as kube2proxy's)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class Metrics:
    """Tools checked, restarted, throttled; errors by kind; when the last pass ended and how long it took."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.checked = Counter(
            "webservicemonitor_tools_checked", "Tools whose manifest was looked at", registry=r
        )
        self.restarted = Counter(
            "webservicemonitor_restarts", "Restarts attempted, by outcome", ["outcome"], registry=r
        )
        self.throttled = Counter(
            "webservicemonitor_throttled", "Restarts not attempted: too many lately", registry=r
        )
        self.errors = Counter("webservicemonitor_errors", "Problems met, by kind", ["kind"], registry=r)
        self.last_pass = Gauge(
            "webservicemonitor_last_pass_timestamp_seconds", "When the last pass ended", registry=r
        )
        self.pass_seconds = Gauge("webservicemonitor_pass_seconds", "How long the last pass took", registry=r)

    def serve(self, address: str, port: int) -> None:
        """Expose /metrics on `address:port`; port 0 means not at all."""
        if port:
            start_http_server(port, addr=address, registry=self.registry)
