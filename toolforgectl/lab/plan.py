"""What a lab is before anything starts: its proxies and their addresses, its ports, and the files
it writes for them (fleet.yaml, the active-proxy files, hiera.yaml, the token key).

One proxy (the default) is proxy-01 on 127.0.0.1, as the lab always was. Two or more are proxy-01,
proxy-02, ... on 127.0.0.11, 127.0.0.12, ... (Linux answers on all of 127.0.0.0/8, so each has an
address of its own, as VMs do): each service listens on one port number on every proxy's address,
proxy-01 is active, and each proxy keeps its own active-proxy file in `<dir>/<proxy>/`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolforgectl.adapters.processes import free_port_on
from toolforgectl.core import config, tokens
from toolforgectl.core.config.hiera import ACTIVE_PROXY_KEY, PROXIES_KEY
from toolforgectl.core.errors import LabError

LAB_HOST = "127.0.0.1"  # the sample tools, and the proxy of a one-proxy lab
PROXY_NAME = "proxy-01"
FIRST_ADDRESS = 11  # 127.0.0.11 is proxy-01 of a lab of several proxies
FLOATING_IP = "127.0.0.10"  # a lab of several proxies: the public address, forwarded as the cloud says
MAX_PROXIES = 9
HIERA_FILE = "hiera.yaml"
PROXIES_DIR = "proxies.d"  # fleet.yaml's proxies_dir: the proxies `deploy proxy` adds
KUBE2PROXY_CHECK_INTERVAL = 1.0  # the lab's kube2proxy notices a failover within a second


@dataclass(frozen=True)
class Member:
    """One proxy of the lab."""

    name: str
    address: str


@dataclass(frozen=True)
class Ports:
    """One number per service, free on every proxy's address."""

    redis: int
    http: int
    https: int
    internal: int
    listener: int
    listener_metrics: int
    kube2proxy_metrics: int
    monitor_metrics: int  # webservicemonitor's, on the tools' host
    kube_api: int
    ssh: int  # the lab's sshd, on every proxy's address and the grid host (several proxies)
    cloud: int  # the lab's OpenStack API (several proxies)
    dns: int  # the lab's DNS server, on 127.0.0.1 (several proxies)


def members(count: int) -> list[Member]:
    """The lab's proxies; the first is the active one."""
    if not 1 <= count <= MAX_PROXIES:
        raise LabError(f"a lab has 1 to {MAX_PROXIES} proxies, not {count}")
    if count == 1:
        return [Member(PROXY_NAME, LAB_HOST)]
    return [Member(f"proxy-{n + 1:02d}", f"127.0.0.{FIRST_ADDRESS + n}") for n in range(count)]


def vm_addresses(count: int) -> list[str]:
    """The addresses the lab's cloud gives the proxy "VMs" it creates, in order (none for one proxy)."""
    if count == 1:
        return []
    return [f"127.0.0.{FIRST_ADDRESS + n}" for n in range(count, MAX_PROXIES)]


def ports(proxies: list[Member]) -> Ports:
    """Free ports for every service, each free on every proxy's address (those of the VMs the
    cloud may create too: each service takes the same number there) and on the tools' host."""
    public = [FLOATING_IP] if len(proxies) > 1 else []
    every = [proxy.address for proxy in proxies] + vm_addresses(len(proxies))
    hosts = tuple(dict.fromkeys([*every, LAB_HOST, *public]))
    numbers: list[int] = []
    while len(numbers) < len(Ports.__dataclass_fields__):
        port = free_port_on(hosts)
        if port not in numbers:
            numbers.append(port)
    return Ports(*numbers)


def redis_url(proxy: Member, found: Ports) -> str:
    """Where `proxy`'s Redis answers."""
    return f"redis://{proxy.address}:{found.redis}/0"


def active_proxy_file(directory: Path, proxy: Member, count: int) -> Path:
    """Where `proxy` keeps its active-proxy file (a one-proxy lab: `<dir>/active-proxy`, as always)."""
    return directory / "active-proxy" if count == 1 else directory / proxy.name / "active-proxy"


def write(
    directory: Path,
    proxies: list[Member],
    found: Ports,
    key: Path,
    dataplane: Mapping[str, Any],
    sections: Mapping[str, Any] | None = None,
) -> config.Fleet:
    """Write fleet.yaml (with a file-backed `hiera:` section), every proxy's active-proxy file
    (naming the first) and hiera.yaml."""
    active = proxies[0]
    entries = []
    for proxy in proxies:
        file = active_proxy_file(directory, proxy, len(proxies))
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(active.name, encoding="utf-8")  # as puppet writes it: no newline
        entry: dict[str, Any] = {
            "name": proxy.name,
            "address": proxy.address,
            "redis": redis_url(proxy, found),
        }
        if len(proxies) > 1:
            entry["ssh"] = {"port": found.ssh}
        entries.append({**entry, "active_proxy_file": str(file)})
    data: dict[str, Any] = {
        "proxies": entries,
        "active_proxy": active.name,
        "dataplane": _dataplane(found, dataplane),
        "proxylistener": _listener(directory, active, found, key),
        # Known before the proxies are rendered: the monitor's metrics port is one of the service
        # ports no route may point at (core/destinations.py); webservices.configure adds the rest.
        "webservice": {"metrics_address": LAB_HOST, "metrics_port": found.monitor_metrics},
        "hiera": {"backend": "file", "path": str(directory / HIERA_FILE)},
        **(sections or {}),
    }
    hiera = f"# The lab's hiera (written by `toolforgectl lab up`).\n{ACTIVE_PROXY_KEY}: {active.name}\n"
    if len(proxies) > 1:
        data["kube2proxy"] = {
            "kubeconfig": str(kubeconfig(directory)),
            "metrics_address": active.address,
            "metrics_port": found.kube2proxy_metrics,
            "active_check_interval": KUBE2PROXY_CHECK_INTERVAL,
        }
        _as_deployed(directory, data, entries)
        hiera += yaml.safe_dump({PROXIES_KEY: [proxy.name for proxy in proxies]})
    (directory / HIERA_FILE).write_text(hiera, encoding="utf-8")
    path = directory / "fleet.yaml"
    text = "# Written by `toolforgectl lab up`.\n" + yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return config.load(path)


def _as_deployed(directory: Path, data: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """A lab of several proxies keeps each in `proxies_dir` (one NAME.yaml), as if deployed, so
    that `proxy remove` can remove any of them; with no fixed `active_proxy` naming one."""
    folder = directory / PROXIES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        (folder / f"{entry['name']}.yaml").write_text(
            yaml.safe_dump(entry, sort_keys=False), encoding="utf-8"
        )
    data["proxies"] = []
    data.pop("active_proxy", None)
    data["proxies_dir"] = str(folder)


def kubeconfig(directory: Path) -> Path:
    """The kubeconfig of the lab's Kubernetes API (written by the API when it starts)."""
    return directory / "kube" / "kubeconfig"


def _dataplane(found: Ports, dataplane: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "http_port": found.http,
        "https_port": found.https,
        "internal_port": found.internal,
        "worker_processes": "1",
        # As root, nginx would run workers as www-data, who cannot read a private lab dir; unprivileged,
        # nginx ignores `user` anyway.
        "user": "root" if os.geteuid() == 0 else "",
        "access_log_buffer": "",
        # The lab's tools run on the proxy's host, at 127.0.0.1 (on a proxy VM, loopback is the proxy).
        "allow_loopback_backends": True,
        **dataplane,
    }


def _listener(directory: Path, active: Member, found: Ports, key: Path) -> dict[str, Any]:
    """The proxylistener section; each proxy's listener gets its address and Redis on its command line."""
    key.parent.mkdir(parents=True, exist_ok=True)
    if not key.exists():
        tokens.write_secret(key, secrets.token_bytes(32))
    return {
        "listen": active.address,
        "port": found.listener,
        "metrics_address": active.address,
        "metrics_port": found.listener_metrics,
        "redis": redis_url(active, found),
        "identity": ["token"],
        "token_key_file": str(key),
    }
