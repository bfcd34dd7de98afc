"""The fleet configuration: one YAML file loaded once into frozen, typed objects.

    proxies:                      # every proxy VM of the fleet
      - name: proxy-01
        address: 172.16.0.10      # where its nginx, proxylistener and Redis answer
        redis: redis://172.16.0.10:6379/0
    active_proxy: proxy-01        # holds the floating IP; its Redis takes the writes
    hiera: {backend: file, path: /etc/toolforgectl/hiera.yaml}
    cloud: eqiad1                 # an openstacksdk clouds.yaml entry (optional)
    dataplane: {routing: path}    # nginx + urlproxy.lua settings (optional; see siteconfig.py)

Where the file is: `--config PATH`, else $TOOLFORGECTL_CONFIG, else
~/.config/toolforgectl/config.yaml.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolforgectl.errors import ConfigError
from toolforgectl.siteconfig import DataPlane, parse_dataplane

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
class Fleet:
    """The whole fleet as the config file describes it."""

    proxies: tuple[Proxy, ...]
    active_proxy: str
    hiera: Hiera = field(default_factory=Hiera)
    cloud: str | None = None
    source: str = "<built-in>"
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
    unknown = set(data) - {"proxies", "active_proxy", "hiera", "cloud", "dataplane"}
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
    hiera, cloud = _hiera(data.get("hiera"), source), _cloud(data, source)
    dataplane = parse_dataplane(data.get("dataplane"), source)
    return Fleet(proxies, str(active), hiera, cloud, source, dataplane)


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
