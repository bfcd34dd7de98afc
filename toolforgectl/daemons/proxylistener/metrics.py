"""The proxylistener's Prometheus metrics: requests by command and outcome, latency, open connections,
and, apart from the requests, port probes (a connect and close without a byte)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

REQUESTS = Counter(
    "proxylistener_requests_total", "Registration requests by command and outcome", ["command", "outcome"]
)
LATENCY = Histogram(
    "proxylistener_request_seconds",
    "Time from accepting a connection to sending its reply",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONNECTIONS = Gauge(
    "proxylistener_connections",
    # Refused connections count while they are told "busy", so this can read above max_connections.
    "Connections open right now: being served, or being told the listener is busy",
)
PROBES = Counter(
    "proxylistener_probes", "Connections closed without sending a byte (port probes, health checks)"
)


def observe(command: str, outcome: str, seconds: float) -> None:
    """Count one finished request and its latency."""
    REQUESTS.labels(command=command, outcome=outcome).inc()
    LATENCY.observe(seconds)


def serve(address: str, port: int) -> None:
    """Expose /metrics on `address:port` (a local address); port 0 turns it off."""
    if port:
        start_http_server(port, addr=address)
