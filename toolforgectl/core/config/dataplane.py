"""The `dataplane:` section of the fleet config: how every proxy's nginx + urlproxy.lua behave.

    dataplane:
      routing: path              # or "host": the left-most Host label names the tool
      tls_certificate: /etc/acmecerts/toolforge/live/rsa-2048.chained.crt
      tls_key: /etc/acmecerts/toolforge/live/rsa-2048.key
      default_backend: http://127.0.0.1:8000   # where unknown tools go (else 503)
      rate_limit: 50             # requests/s per client IP, 0 = off; over it: 429
      maintenance: false         # true: every tool answers the maintenance page (503)
      client_ip: hidden          # or "forwarded": tools get the client's address (X-Forwarded-For)

Every key is optional; unknown keys are rejected so a typo never silently does nothing.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, StrictBool, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from toolforgectl.core import validate
from toolforgectl.core.config.schema import (
    SECTION,
    Count,
    CountOrOff,
    Nginx,
    Port,
    Text,
    Texts,
    domain,
    invalid,
    one_of,
)
from toolforgectl.core.errors import ValidationError

ROUTING_MODES = ("path", "host")
CLIENT_IP_MODES = ("hidden", "forwarded")
_NAMESERVER = re.compile(
    r"\[(?P<v6>[0-9A-Fa-f:.]+)\](?::(?P<p6>[0-9]{1,5}))?|(?P<v4>[0-9.]+)(?::(?P<p4>[0-9]{1,5}))?"
)


def _backend_or_empty(value: str) -> str:
    if value:
        try:
            validate.backend(value)
        except ValidationError as exc:
            raise invalid(f"is not a usable backend: {exc}") from None
    return value


_REDIS_SIZE = re.compile(r"[1-9][0-9]*(?:[kmg]b?)?", re.IGNORECASE)


def _redis_size(value: str) -> str:
    # A limit of 0 is Redis's "no limit": the point of the setting is to have one.
    if not _REDIS_SIZE.fullmatch(value):
        raise invalid(f"must be a size Redis reads, such as 512mb or 2gb, not {value!r}")
    return value


def _nameservers(value: str) -> str:
    """Space-separated nameservers as nginx's `resolver` directive takes them: `10.0.0.2`,
    `10.0.0.2:5353`, `[2001:db8::2]:53`. Empty: those of the proxy's /etc/resolv.conf."""
    for text in value.split():
        found = _NAMESERVER.fullmatch(text)
        try:
            if not found:
                raise ValueError(text)
            ipaddress.ip_address(found["v6"] or found["v4"])
            port = int(found["p6"] or found["p4"] or 53)
        except ValueError:
            raise invalid(f"must list nameservers as IP or IP:port ([IPv6]:port), not {text!r}") from None
        if not 1 <= port <= 65535:
            raise invalid(f"has port {port} in {text!r}, outside 1-65535")
    return value


@dataclass(frozen=True, config=SECTION)
class DataPlane:
    """Settings of the front proxy's nginx and Lua, shared by every proxy of the fleet."""

    routing: Annotated[Text, one_of(*ROUTING_MODES)] = "path"
    server_name: Text = "_"
    http_port: Port = 80
    https_port: Port = 443
    internal_port: Port = 8081
    internal_address: Text = ""  # empty: the proxy's own address
    tls_certificate: Text = "/etc/ssl/localcerts/toolforge.crt"
    tls_key: Text = "/etc/ssl/private/toolforge.key"
    default_backend: Annotated[Text, AfterValidator(_backend_or_empty)] = ""  # empty: unknown tools get 503
    rate_limit: CountOrOff = 0
    rate_limit_burst: CountOrOff = 50
    rate_limit_zone_size: Nginx = "10m"
    maintenance: StrictBool = False
    brand: Text = "Toolforge"
    hsts_max_age: CountOrOff = 31622400
    websocket_timeout: Count = 3600  # seconds a WebSocket may stay silent (both directions)
    read_timeout: Count = 300  # seconds a tool may take to answer any other request, else 504
    connect_timeout: Count = 5
    client_max_body_size: Nginx = "128m"  # largest request body (uploads), as the original; over it: 413
    gzip: StrictBool = True  # compress text answers for clients that accept it, as the original did
    # Path mode: a tool with `redirect:<tool>` (registerCanonical) answers every request with a 301
    # to https://<tool>.<canonical_domain><rest of the path>; empty: redirect keys are ignored.
    canonical_domain: Annotated[Text, domain(optional=True)] = ""
    proxy_buffering: StrictBool = True
    user: Text = "www-data"  # workers' user when nginx starts as root; empty: nginx's default
    worker_processes: Nginx = "auto"
    worker_connections: Count = 8192
    upstream_keepalive: Count = 256
    error_log_level: Text = "warn"
    access_log_buffer: Nginx = "64k"
    route_cache_size: Nginx = "32m"
    state_cache_size: Nginx = "8m"
    redis_timeout_ms: Count = 100
    # The route watcher PINGs Redis after this long without a message; unanswered twice: Redis is down.
    watcher_ping_ms: Count = 1000
    cache_ttl: Count = 60
    # Tuning of urlproxy.lua (docs/dataplane.md, "Settings"); render passes each to its settings JSON.
    redis_keepalive_ms: Count = 60000  # how long an idle pooled Redis connection is kept
    redis_pool_size: Count = 32  # pooled Redis connections per worker
    redis_backoff_ms: Count = 250  # after a Redis failure, requests leave Redis alone this long,
    redis_backoff_max_ms: Count = 5000  # doubling with each further failure up to this
    worker_cache_size: Count = 20000  # tools whose routes each worker keeps in its own table
    peer_cache_size: Count = 10000  # backend URLs each worker keeps parsed
    list_scan_count: Count = 1000  # keys per SCAN batch of /list
    error_log_interval: Count = 10  # seconds between two urlproxy error lines (all workers together)
    # The proxy's Redis (templates/redis/redis.conf.j2): its memory limit, in Redis's units.
    redis_maxmemory: Annotated[Text, AfterValidator(_redis_size)] = "512mb"
    # Abuse controls (the block lists themselves are in Redis: `toolforgectl block`).
    block_empty_user_agent: StrictBool = False  # true: requests without a User-Agent get a 403
    # Prometheus /metrics on the internal port (docs/dataplane.md, "Metrics").
    metrics: StrictBool = True  # false: no /metrics and no log-phase Lua on the request path
    metrics_dict_size: Nginx = "8m"  # the shared counters (about 1 MB per 1,000 labelled tools)
    metrics_tools: Count = 2000  # tools with their own label; the others count as tool="_other"
    metrics_flush_ms: Count = 1000  # how often each worker adds its counts to the shared counters
    # What one tool's routes may cost a worker (docs/security.md, B.1 and B.2).
    regex_match_limit: Count = 100000  # PCRE backtracking steps per route match (lua_regex_match_limit)
    max_routes_per_tool: Count = validate.MAX_ROUTES_PER_TOOL  # writers refuse more; Lua uses the first
    # Whether tools learn the client's address (docs/dataplane.md, "Client addresses"): "hidden" as
    # the original (none of X-Forwarded-For, X-Real-IP), or "forwarded"; in both modes whatever the
    # client sent in those headers (or Forwarded, Client-IP, ...) never reaches a tool.
    client_ip: Annotated[Text, one_of(*CLIENT_IP_MODES)] = "hidden"
    # With client_ip hidden: the tools that get it all the same (their own routes only).
    client_ip_forwarded_tools: Texts = ()

    @field_validator("client_ip_forwarded_tools")
    @classmethod
    def _tool_names_while_hidden(cls, tools: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        for tool in tools:
            try:
                validate.tool_name(tool)
            except ValidationError as exc:
                raise invalid(f"must list tool names: {exc}") from None
        if tools and info.data.get("client_ip") == "forwarded":
            raise invalid("is only for client_ip: hidden (with forwarded, every tool gets the address)")
        return tools

    # Where routes may point (core/destinations.py): loopback only where the tools run on the
    # proxy host itself (the lab); on a proxy VM, loopback is the proxy.
    allow_loopback_backends: StrictBool = False
    # Host-name backends (docs/dataplane.md): resolved off the request path, cached by TTL.
    resolver: Annotated[Text, AfterValidator(_nameservers)] = ""  # empty: /etc/resolv.conf's
    resolver_timeout_ms: Count = 500  # per DNS try (the slow path tries once, the refresher twice)
    resolver_min_ttl: Count = 5  # seconds: an answer's TTL is raised to this, and failures retried after it
    resolver_max_ttl: Count = 300  # seconds: and lowered to this
