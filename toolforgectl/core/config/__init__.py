"""The fleet configuration: `load` a YAML file once into frozen, typed settings (see fleet.py)."""

from toolforgectl.core.config.cloud import Cloud
from toolforgectl.core.config.daemons import DEFAULT_REDIS_PORT, Kube2proxy, ProxyListener
from toolforgectl.core.config.dataplane import DataPlane
from toolforgectl.core.config.dns import Dns
from toolforgectl.core.config.fleet import Fleet, Proxy, active_proxy_file, load, parse
from toolforgectl.core.config.hiera import Hiera
from toolforgectl.core.config.lookup import ENV_VAR, SYSTEM_PATH, config_path, find
from toolforgectl.core.config.operations import Operations, OperationsLog
from toolforgectl.core.config.schema import overridden
from toolforgectl.core.config.webservice import Webservice

__all__ = [
    "DEFAULT_REDIS_PORT",
    "ENV_VAR",
    "SYSTEM_PATH",
    "Cloud",
    "DataPlane",
    "Dns",
    "Fleet",
    "Hiera",
    "Kube2proxy",
    "Operations",
    "OperationsLog",
    "Proxy",
    "ProxyListener",
    "Webservice",
    "active_proxy_file",
    "config_path",
    "find",
    "load",
    "overridden",
    "parse",
]
