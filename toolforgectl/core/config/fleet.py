"""The fleet configuration: one YAML file loaded once into frozen, typed objects.

    proxies:                      # every proxy VM of the fleet
      - name: proxy-01
        address: 172.16.0.10      # where its nginx, proxylistener and Redis answer
        redis: redis://172.16.0.10:6379/0
    active_proxy: proxy-01        # holds the floating IP; its Redis takes the writes
    hiera: {backend: file, path: /etc/toolforgectl/hiera.yaml}
    cloud: eqiad1                 # an openstacksdk clouds.yaml entry (optional)
    proxylistener: {identity: [token], port: 8282}   # optional; see ProxyListener
    kube2proxy: {kubeconfig: /etc/kube2proxy/kubeconfig}   # optional; see Kube2proxy
    dataplane: {routing: path}    # nginx + urlproxy.lua settings (optional; see siteconfig.py)

Where the file is: `--config PATH`, else $TOOLFORGECTL_CONFIG, else
~/.config/toolforgectl/config.yaml.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolforgectl.core.config.dataplane import DataPlane, parse_dataplane
from toolforgectl.core.config.sections import parse_section
from toolforgectl.core.errors import ConfigError

ENV_VAR = "TOOLFORGECTL_CONFIG"
DEFAULT_PATH = Path("~/.config/toolforgectl/config.yaml")
DEFAULT_REDIS_PORT = 6379


@dataclass(frozen=True)
class Proxy:
    """One proxy VM: its name, address and Redis."""

    name: str
    address: str
    redis: str


@dataclass(frozen=True)
class Hiera:
    """Where the hiera data that names the active proxy lives."""

    backend: str = "file"
    path: str = ""


@dataclass(frozen=True)
class ProxyListener:
    """Settings of the proxylistener daemon (TCP 8282) on a proxy VM; docs/security.md explains them."""

    listen: str = "0.0.0.0"
    port: int = 8282
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9282  # 0 turns the Prometheus endpoint off
    redis: str = f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0"
    identity: tuple[str, ...] = ("token",)  # "token" and/or "ident"
    token_key_file: str = "/etc/toolforgectl/proxylistener.key"
    ident_port: int = 113
    ident_timeout: float = 2.0
    ident_networks: tuple[str, ...] = ()  # callers whose identd answers are trusted
    project: str = "tools"  # ident user is <project>.<tool>
    backend_networks: tuple[str, ...] = ()  # destinations allowed besides the caller's own address
    reserved: tuple[str, ...] = ()  # names besides `admin` that need a grant
    granted: tuple[str, ...] = ()  # tools allowed to register a reserved name
    canonical_domain: str = "toolforge.org"
    read_timeout: float = 5.0
    max_line: int = 1024
    max_lines: int = 4
    max_connections: int = 512
    active_proxy_file: str = "/etc/active-proxy"


@dataclass(frozen=True)
class Kube2proxy:
    """Settings of the kube2proxy daemon (the `kube2proxy:` section); every key is optional."""

    kubeconfig: str | None = None  # None: the in-cluster service account
    context: str | None = None
    label_selector: str = "tools.wmflabs.org/webservice=true"
    tool_namespace: str = "tool-{tool}"  # how a tool's namespace is named; "{tool}" = the original
    port_name: str = "http"
    path_label: str = "toollabs-proxy-path"
    active_proxy_file: str = "/etc/active-proxy"
    watch_timeout: int = 240  # server-side timeoutSeconds of each watch
    resync_interval: float = 1800.0  # full relist and diff even when the watch is healthy
    active_check_interval: float = 10.0
    backoff_max: float = 30.0
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9617  # 0 disables the Prometheus endpoint


@dataclass(frozen=True)
class Fleet:
    """The whole fleet as the config file describes it."""

    proxies: tuple[Proxy, ...]
    active_proxy: str
    hiera: Hiera = field(default_factory=Hiera)
    cloud: str | None = None
    source: str = "<built-in>"
    proxylistener: ProxyListener = field(default_factory=ProxyListener)
    kube2proxy: Kube2proxy = field(default_factory=Kube2proxy)
    dataplane: DataPlane = field(default_factory=DataPlane)

    def proxy(self, name: str | None = None) -> Proxy:
        """The proxy called `name`, or the active one when `name` is None."""
        wanted = name or self.active_proxy
        for proxy in self.proxies:
            if proxy.name == wanted:
                return proxy
        known = ", ".join(p.name for p in self.proxies)
        raise ConfigError(f"{self.source}: no proxy named {wanted!r} (known: {known})")


def config_path(option: str | None) -> Path:
    """Where the config file is, from the option, the environment, or the default."""
    chosen = option or os.environ.get(ENV_VAR) or str(DEFAULT_PATH)
    return Path(chosen).expanduser()


def load(path: Path) -> Fleet:
    """Read and check the fleet config at `path`; any problem is one ConfigError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file (create it, pass --config, or use --redis URL)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(text, str(path))


def parse(text: str, source: str) -> Fleet:
    """Build a Fleet from YAML `text`; `source` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(f"{source}:{line}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    return _fleet(data, source)


def _fleet(data: Mapping[str, Any], source: str) -> Fleet:
    sections = {"proxies", "active_proxy", "hiera", "cloud", "proxylistener", "kube2proxy", "dataplane"}
    unknown = set(data) - sections
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s): {', '.join(sorted(map(str, unknown)))}")
    raw_proxies = data.get("proxies")
    if not isinstance(raw_proxies, list) or not raw_proxies:
        raise ConfigError(f"{source}: 'proxies' must be a non-empty list")
    proxies = tuple(_proxy(item, source) for item in raw_proxies)
    names = [p.name for p in proxies]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: proxy names must be unique")
    active = data.get("active_proxy", names[0])
    if active not in names:
        raise ConfigError(f"{source}: active_proxy {active!r} is not one of the proxies")
    return Fleet(
        proxies,
        str(active),
        _hiera(data.get("hiera"), source),
        _cloud(data, source),
        source,
        proxylistener=proxylistener(data.get("proxylistener"), source),
        kube2proxy=_kube2proxy(data.get("kube2proxy"), source),
        dataplane=parse_dataplane(data.get("dataplane"), source),
    )


def _proxy(item: Any, source: str) -> Proxy:
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise ConfigError(f"{source}: each proxy needs at least a 'name'")
    name = item["name"]
    address = item.get("address", "127.0.0.1")
    redis = item.get("redis", f"redis://{address}:{DEFAULT_REDIS_PORT}/0")
    if not isinstance(address, str) or not isinstance(redis, str):
        raise ConfigError(f"{source}: proxy {name!r}: 'address' and 'redis' must be strings")
    return Proxy(name=name, address=address, redis=redis)


def _hiera(item: Any, source: str) -> Hiera:
    if item is None:
        return Hiera()
    if not isinstance(item, Mapping):
        raise ConfigError(f"{source}: 'hiera' must be a mapping")
    return Hiera(backend=str(item.get("backend", "file")), path=str(item.get("path", "")))


def _cloud(data: Mapping[str, Any], source: str) -> str | None:
    cloud = data.get("cloud")
    if cloud is not None and not isinstance(cloud, str):
        raise ConfigError(f"{source}: 'cloud' must be the name of a clouds.yaml entry")
    return cloud


def proxylistener(item: Any, source: str) -> ProxyListener:
    """The `proxylistener` section: each key typed like its default; networks must parse."""
    settings = parse_section(ProxyListener, "proxylistener", item, source)
    bad_modes = set(settings.identity) - {"token", "ident"}
    if bad_modes or not settings.identity:
        raise ConfigError(f"{source}: proxylistener.identity must list 'token' and/or 'ident'")
    for network in (*settings.ident_networks, *settings.backend_networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"{source}: proxylistener: {network!r} is not a network") from None
    for name in ("port", "ident_port", "max_line", "max_lines", "max_connections"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{source}: proxylistener.{name} must be positive")
    return settings


def _kube2proxy(item: Any, source: str) -> Kube2proxy:
    """The `kube2proxy:` section; `tool_namespace` must say where the tool name goes."""
    settings = parse_section(Kube2proxy, "kube2proxy", item, source)
    if "{tool}" not in settings.tool_namespace:
        raise ConfigError(f"{source}: kube2proxy.tool_namespace must contain {{tool}}")
    return settings
