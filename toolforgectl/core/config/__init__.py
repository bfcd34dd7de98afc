"""The fleet configuration: `load` a YAML file once into frozen, typed settings (see fleet.py)."""

from toolforgectl.core.config.dataplane import DataPlane
from toolforgectl.core.config.fleet import (
    DEFAULT_REDIS_PORT,
    ENV_VAR,
    Fleet,
    Hiera,
    Kube2proxy,
    Proxy,
    ProxyListener,
    config_path,
    load,
    parse,
    proxylistener,
)

__all__ = [
    "DEFAULT_REDIS_PORT",
    "ENV_VAR",
    "DataPlane",
    "Fleet",
    "Hiera",
    "Kube2proxy",
    "Proxy",
    "ProxyListener",
    "config_path",
    "load",
    "parse",
    "proxylistener",
]
