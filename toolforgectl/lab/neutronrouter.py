"""The lab's router for a real Neutron (`lab up --proxies 2 --cloud openstack`): it makes the lab's
loopback floating IP follow Neutron's association, and reports the floating IP's status as
Neutron's L3 agent would.

In a cloud, the L3 agent applies each association Neutron records to the router (a DNAT from the
floating IP to the port's fixed IP) and reports the floating IP ACTIVE. In the lab the relay
(lab/floatingip.py) is the DNAT, on loopback, and it forwards each new connection to the target
its state file names; this process is the agent: every INTERVAL it reads the floating IP from
Neutron (through the cloud adapter, as the project user, as failover reads it), finds which of the
lab's servers has the port Neutron names, and writes that server's lab address (the proxy's
127.0.0.1N: Neutron's fixed IPs are addresses no packet reaches here) to the relay's state file;
then it reports status as L3AgentStandIn does (lab/openstack.py). A floating IP on a port of no
lab server forwards nowhere, as one on a port whose server is gone.

Run it as its own process (the lab does):

    python -m toolforgectl.lab.neutronrouter --openstack-dir D --cloud lab --floating-ip 127.0.0.10 \\
        --server proxy-01=127.0.0.11 --server proxy-02=127.0.0.12 --state D/router.json
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from toolforgectl.adapters.cloud import Cloud, CloudReads
from toolforgectl.core import config
from toolforgectl.core.errors import NotFoundError, ToolforgectlError
from toolforgectl.lab.cloudstate import CloudState, FloatingIp
from toolforgectl.lab.openstack import L3AgentStandIn, sql

INTERVAL = 0.5  # as often as the L3 agent's stand-in of the slow tier reports


class Router:
    """Applies Neutron's association of floating IP `address` to the relay's state file `state`.

    `servers`: each lab server's name and the lab address its proxy answers on."""

    def __init__(
        self,
        reads: CloudReads,
        address: str,
        servers: dict[str, str],
        state: Path,
        report: Callable[[], None],
    ) -> None:
        self.reads = reads
        self.address = address
        self.servers = servers
        self.state = state
        self.report = report
        self._ports: dict[str, str] = {}  # Neutron port id -> lab server name
        self._applied: tuple[str | None, str | None] | None = None  # (port, lab address) written last

    def tick(self) -> None:
        """Apply what Neutron says now (if it changed), then report the status."""
        fip = self.reads.floating_ip(self.address)
        target = self._lab_address(fip.port_id)
        if (fip.port_id, target) != self._applied:
            relayed = CloudState(path=self.state)
            relayed.floating_ips[fip.id] = FloatingIp(fip.id, self.address, fip.port_id, target, fip.revision)
            relayed.save()
            self._applied = (fip.port_id, target)
            where = f"{target} ({self._ports.get(fip.port_id or '', '?')})" if target else "nowhere"
            print(f"neutronrouter: {self.address} -> {where}, Neutron revision {fip.revision}", flush=True)
        self.report()  # after applying: ACTIVE means the relay forwards there

    def _lab_address(self, port_id: str | None) -> str | None:
        """The lab address of the server whose port is `port_id` (None: no lab server's)."""
        if port_id is None:
            return None
        if port_id not in self._ports:  # a server's port id never changes: look up each once
            for server in self.servers:
                try:
                    self._ports[self.reads.server_port(server).port_id] = server
                except NotFoundError:
                    continue  # deleted (`proxy remove`): nothing to forward to
        name = self._ports.get(port_id)
        return self.servers[name] if name else None


def run(router: Router, stopping: threading.Event) -> None:
    """Tick every INTERVAL until `stopping`; an error (the API busy or restarting) leaves the relay
    where it was, as a router keeps forwarding while its agent cannot reach Neutron."""
    while True:
        try:
            router.tick()
        except ToolforgectlError as exc:
            print(f"neutronrouter: {exc}", file=sys.stderr, flush=True)
        if stopping.wait(INTERVAL):
            return


def main(argv: list[str] | None = None) -> None:
    """Follow Neutron until SIGTERM (the lab starts it this way)."""
    parser = argparse.ArgumentParser(
        prog="python -m toolforgectl.lab.neutronrouter",
        description="Make the lab's loopback floating IP follow its association in a real Neutron.",
    )
    parser.add_argument("--openstack-dir", type=Path, required=True, help="the control plane's directory")
    parser.add_argument("--cloud", required=True, help="the clouds.yaml entry to read Neutron as")
    parser.add_argument("--floating-ip", required=True, help="the floating IP's address (in Neutron too)")
    parser.add_argument(
        "--server", action="append", required=True, help="NAME=ADDRESS: a lab server and its proxy's address"
    )
    parser.add_argument("--state", type=Path, required=True, help="the relay's state file to write")
    args = parser.parse_args(argv)
    servers = dict(item.split("=", 1) for item in args.server)
    clouds_yaml = str(args.openstack_dir / "clouds.yaml")
    cloud = Cloud.connect(
        config.Cloud(name=args.cloud, floating_ip=args.floating_ip, clouds_yaml=clouds_yaml)
    )
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def report() -> None:
        sql(args.openstack_dir, "neutron", L3AgentStandIn.STATEMENT)

    try:
        run(Router(cloud, args.floating_ip, servers, args.state, report), stopping)
    finally:
        cloud.close()


if __name__ == "__main__":
    main()
