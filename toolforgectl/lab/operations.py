"""What operations reach in a lab of several proxies: its hosts over SSH, its cloud, its floating
IP, its DNS.

A failover in the lab runs the same code as in production, so the lab gives it the same things to
talk to: an sshd on every proxy's address and on the "grid" host (127.0.0.1, where the sample
tools run and keep their own active-proxy file), a small OpenStack API (lab/cloudapi.py, through
openstacksdk), a floating IP, 127.0.0.10, whose forwarder (lab/floatingip.py) sends each new
connection to the proxy the cloud associates it with, as a Neutron router's DNAT does, and a DNS
server (lab/dnsserver.py: dnsmasq) answering the records of the cloud's Designate, where the
public name DNS_NAME leads to the active proxy's own address, as the internal recursors do.

With `cloud="openstack"` the cloud is a real OpenStack control plane instead (lab/openstacklab.py),
whose Neutron the floating IP's forwarder follows, and whose Designate publishes to a BIND on the
lab's DNS port.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolforgectl.adapters.processes import binary, spawn, wait_for_port
from toolforgectl.core.config.fleet import EVERY_PROXY
from toolforgectl.lab import dnsserver, openstacklab, sshd
from toolforgectl.lab.cloudstate import LAB_NETWORK
from toolforgectl.lab.dnsserver import DnsFiles
from toolforgectl.lab.plan import FLOATING_IP, LAB_HOST, Member, Ports, vm_addresses
from toolforgectl.lab.state import LabState, ProcessRecord

CLOUD_NAME = "lab"
CLOUDS = ("fake", "openstack")  # the lab's own small API (the default), or a real control plane
GRID = "grid"  # the host group of the lab's one grid node (127.0.0.1)
DNS_ZONE = "lab.test."  # the lab's Designate zone, served by its DNS server
DNS_NAME = "tools.lab.test."  # the public name, whose record follows the active proxy


@dataclass(frozen=True)
class Paths:
    """Where the lab keeps what its operations use."""

    directory: Path

    @property
    def ssh(self) -> Path:
        """The sshd's keys, config and log."""
        return self.directory / "ssh"

    @property
    def cloud(self) -> Path:
        """The cloud's state, clouds.yaml and logs."""
        return self.directory / "cloud"

    @property
    def dns(self) -> DnsFiles:
        """The DNS server's hosts file, pid file and log."""
        return DnsFiles(self.directory / "dns")

    @property
    def grid_active_proxy(self) -> Path:
        """The active-proxy file of the lab's grid node (where the sample tools register from)."""
        return self.directory / GRID / "active-proxy"


def sections(directory: Path, proxies: list[Member], found: Ports, cloud: str = "fake") -> dict[str, Any]:
    """The fleet config's `cloud:` (`cloud`: "fake" or "openstack"), `dns:`, `remote:` and
    `operations:` sections for the lab (and the ssh keys and the grid node's active-proxy file they name)."""
    paths = Paths(directory)
    addresses = _hosts(proxies)
    lab = sshd.keys(paths.ssh, addresses, found.ssh)
    paths.grid_active_proxy.parent.mkdir(parents=True, exist_ok=True)
    paths.grid_active_proxy.write_text(proxies[0].name, encoding="utf-8")
    fake = {
        "name": CLOUD_NAME,
        "clouds_yaml": str(paths.cloud / "clouds.yaml"),
        "floating_ip": FLOATING_IP,
        "flavor": "g3.cores2.ram4.disk20",
        "image": "debian-12.0-bookworm",
        "network": LAB_NETWORK,
    }
    return {
        "cloud": fake if cloud == "fake" else openstacklab.cloud_section(paths.cloud),
        "dns": {  # the fake cloud's Designate and dnsmasq, or Designate and BIND
            "name": DNS_NAME,
            "backend": "designate",
            "zone": DNS_ZONE,
            "resolvers": [f"{LAB_HOST}:{found.dns}"],
        },
        "remote": {
            **lab.remote_section(),
            "timeout": 60.0,
            "groups": {
                "proxies": [EVERY_PROXY],
                GRID: [f"{LAB_HOST}:{found.ssh}"],
            },
            "active_proxy_files": {GRID: str(paths.grid_active_proxy)},
            "converge": {"proxies": converge_push(directory)},
        },
        "operations": {"state_dir": str(directory / "runs")},
    }


def converge_push(directory: Path) -> dict[str, str]:
    """How converge pushes the data plane to the lab's proxies: into `<dir>/<proxy>/`, where
    `lab up` rendered it, checked and reloaded with the same nginx and options it started with."""
    nginx = f"{binary('nginx')} -p {{run_dir}} -e stderr -c {{nginx_conf}}"
    restart = f"{sys.executable} -m toolforgectl.lab.restart"  # as `systemctl restart` on a VM
    return {
        "push": "dataplane",
        "root": str(directory / "{proxy}"),
        "check": f"{nginx} -t -q",
        "reload": f"{nginx} -s reload",
        "restart": f"{restart} --dir {directory} --proxy {{proxy}} proxylistener",
    }


def start(
    state: LabState,
    directory: Path,
    proxies: list[Member],
    found: Ports,
    progress: Callable[[str], None],
    cloud: str = "fake",
) -> None:
    """Start the sshd, the DNS server and the cloud API (or, `cloud="openstack"`, the control plane
    and the router that follows it), and the floating IP's forwarder; each is recorded in `state`."""
    paths = Paths(directory)
    addresses = _hosts(proxies)
    progress(f"lab: starting sshd on port {found.ssh} of {', '.join(addresses)} (its own keys)")
    _, process = sshd.start(paths.ssh, addresses, found.ssh)
    state.processes.append(ProcessRecord.of("sshd", process, [sshd.SSHD, str(paths.ssh / "sshd_config")]))
    state.save()

    paths.cloud.mkdir(parents=True, exist_ok=True)
    if cloud == "openstack":
        relayed = openstacklab.start(state, paths.cloud, proxies, (DNS_ZONE, DNS_NAME, found.dns), progress)
    else:
        _start_fake_cloud(state, paths, proxies, found, progress)
        relayed = paths.cloud / "cloud.json"

    progress(f"lab: starting the floating IP {FLOATING_IP} (ports {found.http}, {found.https})")
    argv = [
        sys.executable, "-m", "toolforgectl.lab.floatingip", "--state", str(relayed),
        "--address", FLOATING_IP, "--port", str(found.http), "--port", str(found.https),
    ]  # fmt: skip
    forwarder = spawn("floatingip", argv, paths.cloud / "floatingip.log", FLOATING_IP, found.https)
    wait_for_port(FLOATING_IP, found.http, forwarder)
    state.processes.append(ProcessRecord.of("floatingip", forwarder, ["toolforgectl.lab.floatingip"]))
    state.floating_ip = f"https://{FLOATING_IP}:{found.https}"
    state.save()


def _start_fake_cloud(
    state: LabState, paths: Paths, proxies: list[Member], found: Ports, progress: Callable[[str], None]
) -> None:
    """The lab's DNS server and its own OpenStack API (cloud.json: where the forwarder reads)."""
    progress(f"lab: starting the lab's DNS server (dnsmasq, zone {DNS_ZONE}) on {LAB_HOST}:{found.dns}")
    dns = dnsserver.start(paths.dns, DNS_ZONE, LAB_HOST, found.dns)
    state.processes.append(ProcessRecord.of("dnsmasq", dns, ["dnsmasq", str(paths.dns.hosts)]))
    state.save()

    progress(f"lab: starting the lab's OpenStack API on {LAB_HOST}:{found.cloud}")
    argv = [
        sys.executable, "-m", "toolforgectl.lab.cloudapi",
        "--state", str(paths.cloud / "cloud.json"), "--clouds-yaml", str(paths.cloud / "clouds.yaml"),
        "--cloud", CLOUD_NAME, "--host", LAB_HOST, "--port", str(found.cloud),
        "--lab-dir", str(paths.directory),
        *(f"--server={proxy.name}={proxy.address}" for proxy in proxies),
        f"--floating-ip={FLOATING_IP}={proxies[0].name}",
        "--dns-dir", str(paths.dns.directory), "--dns-zone", DNS_ZONE,
        f"--dns-record={DNS_NAME}={proxies[0].name}",
    ]  # fmt: skip
    api = spawn("cloudapi", argv, paths.cloud / "cloudapi.log", LAB_HOST, found.cloud)
    state.processes.append(ProcessRecord.of("cloudapi", api, ["toolforgectl.lab.cloudapi"]))
    state.cloud = {"kind": "fake", "api": f"http://{LAB_HOST}:{found.cloud}",
                   "clouds_yaml": str(paths.cloud / "clouds.yaml"), "logs": str(paths.cloud)}  # fmt: skip
    state.save()


def _hosts(proxies: list[Member]) -> tuple[str, ...]:
    """Where the lab's sshd listens: every proxy's address, those the cloud gives the VMs it
    creates (so a new VM answers SSH as soon as it boots), and the grid host."""
    return (*(proxy.address for proxy in proxies), *vm_addresses(len(proxies)), LAB_HOST)
