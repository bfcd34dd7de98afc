"""A proxy "VM" of the lab's cloud: booted from its cloud-init user data, halted when deleted.

`deploy proxy` creates a server with user data rendered from templates/cloud-init/ (the data
plane's files, redis.conf naming the active proxy's Redis as its primary, the active-proxy file,
the fleet config). cloud-init on a real VM writes those files and starts the services. The lab's
cloud does the same on loopback: it writes every file of the user data, then starts, on the
server's fixed address, what the files configure, as `lab up` starts a proxy (lab/fleet.py):
Redis from the written redis.conf (a replica of the active proxy's), nginx from the written
nginx.conf, proxylistener and kube2proxy. The processes are recorded in `<lab>/vms/<name>/`, so
deleting the server, and `lab down`, stop them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from toolforgectl.adapters.render import Layout
from toolforgectl.core import config
from toolforgectl.core.errors import LabError
from toolforgectl.lab import fleet as lab
from toolforgectl.lab.plan import Member
from toolforgectl.lab.state import LabState, changing, load
from toolforgectl.workflows import proxies


def directory(lab_dir: Path, name: str) -> Path:
    """Where the VM `name` keeps its process records and boot log."""
    return lab_dir / lab.VMS / name


def boot(lab_dir: Path, name: str, address: str, user_data: str) -> None:
    """Write the user data's files, then start the proxy `name` on `address` from them."""
    where = directory(lab_dir, name)
    where.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = yaml.safe_load(user_data) or {}
    for entry in document.get("write_files", []):
        path = Path(entry["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(entry.get("content", ""), encoding="utf-8")
        path.chmod(int(entry.get("permissions", "0644"), 8))
    fleet = config.load(lab_dir / "fleet.yaml")  # its proxies_dir lists the new proxy
    proxy = fleet.proxy(name)
    if proxy.address != address:
        raise LabError(f"{name}: the fleet says {proxy.address}, the cloud gave it {address}")
    member = Member(name, address)
    layout = Layout.under(lab_dir / name)
    for made in (layout.log_dir, layout.run_dir, layout.redis_dir):
        made.mkdir(parents=True, exist_ok=True)
    layout.run_dir.chmod(0o700)
    state = LabState(dir=str(where), config=str(lab_dir / "fleet.yaml"))
    log = (where / "boot.log").open("a", encoding="utf-8")

    def progress(line: str) -> None:
        log.write(line + "\n")
        log.flush()

    with log:
        lab.start_redis(state, member, proxies.redis_address(proxy.redis)[1], layout, progress)
        lab.wait_replicating(member, proxy.redis, progress)
        lab.start_proxy(state, member, layout, fleet, Path(fleet.dataplane.tls_certificate), progress)
        lab.start_listener(state, lab_dir, member, fleet, progress)
        lab.start_kube2proxy(state, lab_dir, member, fleet.kube2proxy.metrics_port, progress)
        progress(f"{name}: booted")


def failed(lab_dir: Path, name: str, problem: BaseException) -> None:
    """A boot that failed: what it started is stopped (the server goes to ERROR); the reason is logged."""
    where = directory(lab_dir, name)
    where.mkdir(parents=True, exist_ok=True)
    with (where / "boot.log").open("a", encoding="utf-8") as log:
        log.write(f"{name}: boot failed: {problem}\n")
    lab.down(where)


def halt(lab_dir: Path, name: str) -> None:
    """Stop every process of the VM `name`: one the cloud booted, or one `lab up` started (its
    files stay for reading)."""
    lab.down(directory(lab_dir, name))
    with changing(lab_dir):
        state = load(lab_dir)
        if state is None:
            return
        for record in [r for r in state.processes if r.proxy == name]:
            record.stop()
            state.processes.remove(record)
        state.proxies.pop(name, None)
        state.save()
