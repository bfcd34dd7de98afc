"""The `dataplane:` section of the fleet config: how every proxy's nginx + urlproxy.lua behave.

    dataplane:
      routing: path              # or "host": the left-most Host label names the tool
      tls_certificate: /etc/acmecerts/toolforge/live/rsa-2048.chained.crt
      tls_key: /etc/acmecerts/toolforge/live/rsa-2048.key
      default_backend: http://127.0.0.1:8000   # where unknown tools go (else 503)
      rate_limit: 50             # requests/s per client IP, 0 = off; over it: 429
      maintenance: false         # true: every tool answers the maintenance page (503)

Every key is optional; unknown keys are rejected so a typo never silently does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolforgectl.core import validate
from toolforgectl.core.config.sections import parse_section
from toolforgectl.core.errors import ConfigError, ValidationError

ROUTING_MODES = ("path", "host")


@dataclass(frozen=True)
class DataPlane:
    """Settings of the front proxy's nginx and Lua, shared by every proxy of the fleet."""

    routing: str = "path"
    server_name: str = "_"
    http_port: int = 80
    https_port: int = 443
    internal_port: int = 8081
    internal_address: str = ""  # empty: the proxy's own address
    tls_certificate: str = "/etc/ssl/localcerts/toolforge.crt"
    tls_key: str = "/etc/ssl/private/toolforge.key"
    default_backend: str = ""  # empty: unknown tools get 503
    rate_limit: int = 0
    rate_limit_burst: int = 50
    rate_limit_zone_size: str = "10m"
    maintenance: bool = False
    brand: str = "Toolforge"
    hsts_max_age: int = 31622400
    websocket_timeout: int = 3600
    connect_timeout: int = 5
    proxy_buffering: bool = True
    user: str = "www-data"  # workers' user when nginx starts as root; empty: nginx's default
    worker_processes: str = "auto"
    worker_connections: int = 8192
    upstream_keepalive: int = 256
    error_log_level: str = "warn"
    access_log_buffer: str = "64k"
    route_cache_size: str = "32m"
    state_cache_size: str = "8m"
    redis_timeout_ms: int = 100
    invalidation_poll_ms: int = 25  # a route change is live within about one poll
    cache_ttl: int = 60
    # Tuning of urlproxy.lua (docs/dataplane.md, "Settings"); render passes each to its settings JSON.
    redis_keepalive_ms: int = 60000  # how long an idle pooled Redis connection is kept
    redis_pool_size: int = 32  # pooled Redis connections per worker
    redis_backoff_ms: int = 250  # after a Redis failure, requests leave Redis alone this long,
    redis_backoff_max_ms: int = 5000  # doubling with each further failure up to this
    worker_cache_size: int = 20000  # tools whose routes each worker keeps in its own table
    peer_cache_size: int = 10000  # backend URLs each worker keeps parsed
    list_scan_count: int = 1000  # keys per SCAN batch of /list
    error_log_interval: int = 10  # seconds between two repeated urlproxy error lines, per worker


_PORTS = ("http_port", "https_port", "internal_port")
_POSITIVE = ("websocket_timeout", "connect_timeout", "worker_connections", "upstream_keepalive")
_POSITIVE_MS = ("redis_timeout_ms", "invalidation_poll_ms", "cache_ttl")


def parse_dataplane(item: Any, source: str) -> DataPlane:
    """Build DataPlane from the YAML mapping `item` (None: all defaults); `source` names the file."""
    return _checked(parse_section(DataPlane, "dataplane", item, source), source)


def _checked(plane: DataPlane, source: str) -> DataPlane:
    if plane.routing not in ROUTING_MODES:
        raise ConfigError(f"{source}: dataplane.routing must be one of {', '.join(ROUTING_MODES)}")
    for name in _PORTS:
        if not 1 <= getattr(plane, name) <= 65535:
            raise ConfigError(f"{source}: dataplane.{name} must be a port number (1-65535)")
    for name in (*_POSITIVE, *_POSITIVE_MS):
        if getattr(plane, name) <= 0:
            raise ConfigError(f"{source}: dataplane.{name} must be positive")
    if plane.rate_limit < 0:
        raise ConfigError(f"{source}: dataplane.rate_limit must be 0 (off) or positive")
    if plane.default_backend:
        try:
            validate.backend(plane.default_backend)
        except ValidationError as exc:
            raise ConfigError(f"{source}: dataplane.default_backend: {exc}") from None
    return plane
