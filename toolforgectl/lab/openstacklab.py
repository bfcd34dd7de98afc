"""`lab up --proxies N --cloud openstack`: a real OpenStack control plane as the lab's cloud, in
place of its own small API (lab/cloudapi.py).

The control plane (lab/openstack.py: MariaDB, RabbitMQ, Keystone, Neutron, Placement, Glance,
Nova, from the venv scripts/install-openstack.sh builds) starts from fresh databases in
`<dir>/cloud/openstack/`; Neutron and Nova get the fleet's cloud (a server per proxy, named as
the proxy, and the floating IP on proxy-01's port) and the fleet config's `cloud:` section names
it. Neutron's floating IP has the lab's loopback address (FLOATING_IP), so what failover reads
and moves in Neutron is the address visitors use; the lab's router (lab/neutronrouter.py) makes
the relay (lab/floatingip.py) forward it where Neutron associates it. Every process is recorded
in the lab's state, so `lab down` stops them.

Designate runs too, publishing to a BIND of its own on the lab's DNS port: the public name's A
record names the active proxy's own address, as with the fake cloud's Designate and dnsmasq, so
a failover changes it in Designate and waits until BIND answers the new address. No VM boots
when `deploy proxy` creates a server: Nova's FakeDriver "boots" it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolforgectl.adapters.processes import Process, signal_group
from toolforgectl.core.errors import LabError
from toolforgectl.core.waiting import wait_until
from toolforgectl.lab.cloudstate import forward_target
from toolforgectl.lab.openstack import CLOUD, INFRASTRUCTURE, INSTALL, OpenStackCloud, venv
from toolforgectl.lab.plan import FLOATING_IP, Member
from toolforgectl.lab.state import LabState, ProcessRecord

ROLE = "openstack"  # the role of every process of the control plane in the lab's state
ROUTER_STATE = "router.json"  # what the lab's router writes and the relay reads
IMAGE, FLAVOR, NETWORK = "lab-image", "lab.small", "lab-net"  # as seed_proxies names them
ROUTER_TIMEOUT = 60.0
DNS_TIMEOUT = 120.0  # Designate to BIND takes ~4 s idle; a loaded machine is slower


def directory(cloud_dir: Path) -> Path:
    """Where the control plane keeps its databases, configuration, logs and clouds.yaml."""
    return cloud_dir / "openstack"


def cloud_section(cloud_dir: Path) -> dict[str, Any]:
    """The fleet config's `cloud:` section: the control plane as the project user."""
    return {
        "name": CLOUD,
        "clouds_yaml": str(directory(cloud_dir) / "clouds.yaml"),
        "floating_ip": FLOATING_IP,
        "flavor": FLAVOR,
        "image": IMAGE,
        "network": NETWORK,
    }


def installed_venv() -> Path:
    """The control plane's venv; LabError, saying what to run, when it is not installed."""
    try:
        found = venv()
    except (OSError, subprocess.SubprocessError):
        found = None
    if found is None or not (found / ".complete").is_file():
        raise LabError(
            f"the OpenStack control plane is not installed: run `bash {INSTALL}` once (~1.5 min),"
            " then lab up again"
        )
    return found


def start(
    state: LabState,
    cloud_dir: Path,
    proxies: list[Member],
    record: tuple[str, str, int],
    progress: Callable[[str], None],
) -> Path:
    """Start the control plane, give it the fleet's servers, floating IP and DNS record (`record`:
    zone, name, and the port BIND answers on, on 127.0.0.1), and start the lab's router; returns
    the relay's state file (where the router writes the floating IP's target)."""
    home = directory(cloud_dir)
    zone, name, port = record
    cloud = OpenStackCloud(home, dns=True, venv=installed_venv(), ports={"bind": port})
    progress(
        f"lab: starting OpenStack (MariaDB, RabbitMQ, Keystone, Neutron, Placement, Glance, Nova, Designate"
        f" and BIND on 127.0.0.1:{port}) from fresh databases in {home} (2-3 min; logs in {home / 'logs'})"
    )
    cloud.start()  # a failed start stops what it started
    for process in cloud.processes:
        state.processes.append(ProcessRecord.of(ROLE, process, _marks(process, home)))
    state.cloud = {
        "kind": "openstack",
        "keystone": cloud.url("keystone"),
        "clouds_yaml": str(cloud.clouds_yaml),
        "logs": str(home / "logs"),
    }
    state.save()
    names = tuple(proxy.name for proxy in proxies)
    progress(f"lab: creating servers {', '.join(names)} in Nova and the floating IP {FLOATING_IP} in Neutron")
    seeded = cloud.give_floating_ip_address(cloud.seed_proxies(names), FLOATING_IP)
    cloud.hand_over_status()
    progress(f"lab: creating zone {zone} in Designate, {name} naming {proxies[0].name}'s address")
    _seed_record(cloud, zone, name, proxies[0].address)
    relayed = cloud_dir / ROUTER_STATE
    progress(f"lab: starting the lab's router (the floating IP follows Neutron's association, {relayed})")
    router = _start_router(home, proxies, relayed)
    state.processes.append(
        ProcessRecord.of("neutronrouter", router, ["toolforgectl.lab.neutronrouter", str(home)])
    )
    state.save()
    active = proxies[0]

    def applied() -> bool:
        if not router.alive():
            raise LabError(f"the lab's router exited; see {router.log}")
        return relayed.is_file() and forward_target(relayed, seeded.floating_ip) == active.address

    wait_until(applied, f"the floating IP to lead to {active.name}", ROUTER_TIMEOUT, 0.2, LabError)
    return relayed


def _seed_record(cloud: OpenStackCloud, zone: str, name: str, address: str) -> None:
    """Zone `zone` with A record `name` holding `address`, as the project user (as an operator
    makes them once), and BIND answering it."""
    user = cloud.connect()
    try:
        created = user.dns.create_zone(name=zone, email=f"hostmaster@{zone.rstrip('.')}", ttl=30)
        wait_until(lambda: user.dns.get_zone(created).status == "ACTIVE", f"zone {zone} to be ACTIVE",
                   DNS_TIMEOUT, 0.5, LabError)  # fmt: skip
        user.dns.create_recordset(created, name=name, type="A", records=[address], ttl=30)
    finally:
        user.close()
    wait_until(lambda: cloud.dig(name) == [address], f"BIND to answer {address} for {name}", DNS_TIMEOUT, 0.5,
               LabError)  # fmt: skip


def _start_router(home: Path, proxies: list[Member], relayed: Path) -> Process:
    log = home / "logs" / "neutronrouter.log"
    argv = [
        sys.executable, "-m", "toolforgectl.lab.neutronrouter", "--openstack-dir", str(home),
        "--cloud", CLOUD, "--floating-ip", FLOATING_IP, "--state", str(relayed),
        *(f"--server={proxy.name}={proxy.address}" for proxy in proxies),
    ]  # fmt: skip
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Process("neutronrouter", popen.pid, "", 0, log, popen, popen.pid)


def _marks(process: Process, home: Path) -> list[str]:
    """What identifies `process` in /proc/PID/cmdline: an argument naming the control plane's
    directory (Nova's services rewrite their title, but keep their arguments in it), else its
    whole command line (epmd, RabbitMQ's script, the APIs' server with its port)."""
    args = process.popen.args if process.popen is not None else [process.name]
    argv = [str(arg) for arg in args] if isinstance(args, list) else [str(args)]
    return [arg for arg in argv if str(home) in arg][:1] or argv


def stop_services(records: list[ProcessRecord]) -> list[ProcessRecord]:
    """SIGTERM every service of the control plane at once (Nova's take seconds each to finish),
    before `lab down` stops the records one by one, the database and the message bus last (they
    were started first); returns those signalled."""
    signalled = [r for r in records if r.role == ROLE and r.name not in INFRASTRUCTURE and r.running()]
    for record in signalled:
        signal_group(record.group, signal.SIGTERM)
    return signalled
