"""The daemons' sections of the fleet config: `proxylistener:` and `kube2proxy:`.

Both are optional and every key has a default; docs/security.md and docs/kube2proxy.md explain
each setting next to what it configures.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator
from pydantic.dataclasses import dataclass

from toolforgectl.core.config.schema import (
    SECTION,
    Count,
    Networks,
    Port,
    PortOrOff,
    Seconds,
    Text,
    Texts,
    domain,
    invalid,
)

DEFAULT_REDIS_PORT = 6379  # every proxy VM's Redis, unless its URL says otherwise
IDENTITY_MODES = ("token", "ident")


def _identity(modes: tuple[str, ...]) -> tuple[str, ...]:
    if not modes or not set(modes) <= set(IDENTITY_MODES):
        raise invalid("must list 'token' and/or 'ident'")
    return modes


def _names_a_tool(template: str) -> str:
    if "{tool}" not in template:
        raise invalid("must contain {tool}, where the tool's name goes")
    return template


@dataclass(frozen=True, config=SECTION)
class ProxyListener:
    """Settings of the proxylistener daemon (TCP 8282) on a proxy VM; docs/security.md explains them."""

    listen: Text = "0.0.0.0"
    port: Port = 8282
    metrics_address: Text = "127.0.0.1"
    metrics_port: PortOrOff = 9282  # 0 turns the Prometheus endpoint off
    redis: Text = f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0"
    identity: Annotated[Texts, AfterValidator(_identity)] = ("token",)
    token_key_file: Text = "/etc/toolforgectl/proxylistener.key"
    ident_port: Port = 113
    ident_timeout: Seconds = 2.0
    ident_networks: Networks = ()  # callers whose identd answers are trusted
    project: Text = "tools"  # ident user is <project>.<tool>
    backend_networks: Networks = ()  # destinations allowed besides the caller's own address
    reserved: Texts = ()  # names besides `admin` that need a grant
    granted: Texts = ()  # tools allowed to register a reserved name
    canonical_domain: Annotated[Text, domain()] = "toolforge.org"  # registerCanonical: <tool>.<this>
    read_timeout: Seconds = 5.0
    max_line: Count = 1024
    max_lines: Count = 4
    max_connections: Count = 512
    max_connections_per_source: Count = 16  # checked first: one host cannot fill max_connections
    # None: its proxy's (`proxies[].active_proxy_file`, given `--proxy`), else /etc/active-proxy.
    active_proxy_file: Text | None = None


@dataclass(frozen=True, config=SECTION)
class Kube2proxy:
    """Settings of the kube2proxy daemon (the `kube2proxy:` section); every key is optional."""

    kubeconfig: Text | None = None  # None: the in-cluster service account
    context: Text | None = None
    label_selector: Text = "tools.wmflabs.org/webservice=true"
    # How a tool's namespace is named; "{tool}" = the original layout, one namespace per tool.
    tool_namespace: Annotated[Text, AfterValidator(_names_a_tool)] = "tool-{tool}"
    port_name: Text = "http"
    path_label: Text = "toollabs-proxy-path"
    active_proxy_file: Text | None = None  # None: its proxy's (`proxies[].active_proxy_file`)
    watch_timeout: Count = 240  # server-side timeoutSeconds of each watch
    resync_interval: Seconds = 1800.0  # full relist and diff even when the watch is healthy
    active_check_interval: Seconds = 10.0
    backoff_max: Seconds = 30.0
    metrics_address: Text = "127.0.0.1"
    metrics_port: PortOrOff = 9617  # 0 disables the Prometheus endpoint
