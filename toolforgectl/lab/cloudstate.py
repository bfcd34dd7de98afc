"""What the lab's cloud knows (servers, their ports, floating IPs, DNS zones and their A records),
kept in memory and in a JSON file.

The lab's OpenStack API (cloudapi.py) serves it; the floating IP forwarder (floatingip.py) reads
the file, as a Neutron router applies what Neutron's database says. Like Neutron, every change
to a floating IP bumps its `revision_number`, and a write that names a revision (If-Match) is
refused when the floating IP has moved on since.

Like a Neutron router, the lab applies a new association after `apply_delay` seconds: until then
the floating IP reports status DOWN and still forwards to where it pointed before, so a client
that must wait until the association holds (adapters/cloud.py: wait_associated) has something to
wait for. The time is wall-clock time because two processes share it through the file.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolforgectl.core.errors import LabError

LAB_NETWORK = "lab"  # the one tenant network every lab server's port is on


@dataclass
class Server:
    """A Nova server with one Neutron port and one fixed IPv4 address."""

    id: str
    name: str
    port_id: str
    fixed_ip: str
    status: str = "ACTIVE"  # BUILD while the lab boots a created server (lab/vm.py), or ERROR
    group: str | None = None  # its server group's id (created with a scheduler hint)
    security_groups: list[str] = field(default_factory=list)
    # The port Neutron made on its own and Nova was given ({"fixed_ip", "name", ...}, as in
    # CloudState.ports): Nova keeps such a port when it deletes the server. None: Nova made it.
    given_port: dict[str, Any] | None = None


@dataclass
class FloatingIp:
    """A Neutron floating IP, its association, and what the router does with it right now."""

    id: str
    address: str
    port_id: str | None = None
    fixed_ip: str | None = None
    revision: int = 1
    description: str = ""
    applied_at: float = 0.0  # wall-clock time from which the router forwards to `fixed_ip`
    previous_ip: str | None = None  # where it forwards until then

    def target(self, now: float) -> str | None:
        """The fixed IP the router forwards to at time `now` (None: nowhere)."""
        return self.fixed_ip if now >= self.applied_at else self.previous_ip

    def status(self, now: float) -> str:
        """Neutron's status: ACTIVE once the router applied an association, DOWN otherwise."""
        return "ACTIVE" if self.fixed_ip and now >= self.applied_at else "DOWN"


@dataclass
class Zone:
    """A Designate zone (absolute name, with the trailing dot)."""

    id: str
    name: str
    serial: int = 1  # bumped with every change of one of its records, as Designate does


@dataclass
class Recordset:
    """A Designate A recordset: an absolute name and its addresses."""

    id: str
    zone_id: str
    name: str
    records: list[str]
    type: str = "A"
    ttl: int = 1  # the lab's DNS server answers with a TTL of 1 s whatever this says
    version: int = 1


@dataclass
class CloudState:
    """Servers and floating IPs behind one lock; each change is saved to `path` (if any) at once."""

    servers: dict[str, Server] = field(default_factory=dict)
    floating_ips: dict[str, FloatingIp] = field(default_factory=dict)
    # Created through the API (deploy): ports not yet bound to a server (id -> {fixed_ip, name}), security
    # groups (id -> {"id", "name", "rules"}), server groups (id -> {"id", "name", "policies"}).
    ports: dict[str, dict[str, Any]] = field(default_factory=dict)  # fixed_ip, name, security_groups
    security_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    server_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    zones: dict[str, Zone] = field(default_factory=dict)
    recordsets: dict[str, Recordset] = field(default_factory=dict)
    apply_delay: float = 0.0
    path: Path | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path) -> CloudState:
        """The state saved at `path`, which later changes go back to."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            servers={s["id"]: Server(**s) for s in data["servers"]},
            floating_ips={f["id"]: FloatingIp(**f) for f in data["floating_ips"]},
            ports=dict(data.get("ports", {})),
            security_groups=dict(data.get("security_groups", {})),
            server_groups=dict(data.get("server_groups", {})),
            zones={z["id"]: Zone(**z) for z in data.get("zones", [])},
            recordsets={r["id"]: Recordset(**r) for r in data.get("recordsets", [])},
            apply_delay=float(data.get("apply_delay", 0.0)),
            path=path,
        )

    def save(self) -> None:
        """Write the whole state to `path` atomically (a reader sees the old file or the new one).

        Under the lock from snapshot to rename, so that two changes saved at once cannot land in
        the wrong order and leave the older one in the file."""
        if self.path is None:
            return
        with self.lock:
            data = {
                "servers": [asdict(s) for s in self.servers.values()],
                "floating_ips": [asdict(f) for f in self.floating_ips.values()],
                "ports": self.ports,
                "security_groups": self.security_groups,
                "server_groups": self.server_groups,
                "zones": [asdict(z) for z in self.zones.values()],
                "recordsets": [asdict(r) for r in self.recordsets.values()],
                "apply_delay": self.apply_delay,
            }
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
            partial.replace(self.path)

    # Set-up (the lab and tests call these; the API has no call to create anything) ------------

    def add_server(self, name: str, fixed_ip: str) -> Server:
        """A new server called `name` with one port on the lab network at `fixed_ip`."""
        server = Server(str(uuid.uuid4()), name, str(uuid.uuid4()), fixed_ip)
        with self.lock:
            self.servers[server.id] = server
        self.save()
        return server

    def add_floating_ip(self, address: str, server: str | None = None) -> FloatingIp:
        """A new floating IP `address`, associated with server `server` (a name) if given."""
        fip = FloatingIp(str(uuid.uuid4()), address)
        with self.lock:
            if server is not None:
                chosen = self.server_named(server)
                fip.port_id, fip.fixed_ip = chosen.port_id, chosen.fixed_ip
            self.floating_ips[fip.id] = fip
        self.save()
        return fip

    def add_record(self, name: str, zone: str, server: str) -> Recordset:
        """A new A record `name` in zone `zone` (created if new) holding server `server`'s address."""
        address = self.server_named(server).fixed_ip
        with self.lock:
            found = next((z for z in self.zones.values() if z.name == zone), None)
            if found is None:
                found = Zone(str(uuid.uuid4()), zone)
                self.zones[found.id] = found
            record = Recordset(str(uuid.uuid4()), found.id, name, [address])
            self.recordsets[record.id] = record
        self.save()
        return record

    # Reads -----------------------------------------------------------------------------------

    def server_named(self, name: str) -> Server:
        """The server called `name` (the lab's names are unique)."""
        with self.lock:
            found = next((s for s in self.servers.values() if s.name == name), None)
        if found is None:
            raise LabError(f"no server {name!r} in the lab's cloud")
        return found

    def floating_ip(self, address: str) -> FloatingIp | None:
        """The floating IP with public address `address`, if there is one."""
        with self.lock:
            return next((f for f in self.floating_ips.values() if f.address == address), None)

    def port(self, port_id: str) -> Server | None:
        """The server whose port is `port_id`."""
        with self.lock:
            return next((s for s in self.servers.values() if s.port_id == port_id), None)

    # Changes ---------------------------------------------------------------------------------

    def associate(self, fip_id: str, port_id: str | None, fixed_ip: str | None) -> bool:
        """Point floating IP `fip_id` at `port_id`/`fixed_ip` (None: dissociate); False if that is
        where it points already (no change, no new revision, as Neutron does)."""
        with self.lock:
            fip = self.floating_ips[fip_id]
            if (fip.port_id, fip.fixed_ip) == (port_id, fixed_ip):
                return False
            now = time.time()
            fip.previous_ip = fip.target(now)
            fip.port_id, fip.fixed_ip = port_id, fixed_ip
            fip.applied_at = now + self.apply_delay
            fip.revision += 1
        self.save()
        return True

    def new_port(self, addresses: list[str], name: str = "") -> tuple[str, str] | None:
        """A port on the lab network at the first of `addresses` no server or port has (None: all taken)."""
        with self.lock:
            taken = {s.fixed_ip for s in self.servers.values()} | {p["fixed_ip"] for p in self.ports.values()}
            free = next((address for address in addresses if address not in taken), None)
            if free is None:
                return None
            port_id = str(uuid.uuid4())
            self.ports[port_id] = {"fixed_ip": free, "name": name}
        self.save()
        return port_id, free

    def set_records(self, recordset_id: str, records: list[str]) -> Recordset:
        """Replace the addresses of recordset `recordset_id`, bumping its version and its zone's serial."""
        with self.lock:
            record = self.recordsets[recordset_id]
            record.records = list(records)
            record.version += 1
            self.zones[record.zone_id].serial += 1
        self.save()
        return record

    def a_records(self) -> dict[str, list[str]]:
        """Every A record: absolute name -> addresses (what the DNS server answers)."""
        with self.lock:
            return {r.name: list(r.records) for r in self.recordsets.values() if r.type == "A"}

    def touch(self, address: str, description: str | None = None) -> int:
        """Change floating IP `address` in a way that moves nothing (its description), as another
        operator or tool might, and return its new revision."""
        with self.lock:
            fip = self.floating_ip(address)
            if fip is None:
                raise LabError(f"no floating IP {address} in the lab's cloud")
            fip.description = description if description is not None else f"touched r{fip.revision}"
            fip.revision += 1
            revision = fip.revision
        self.save()
        return revision


def forward_target(path: Path, address: str) -> str | None:
    """Where the router forwards floating IP `address` now, as the state file at `path` says
    (None: the floating IP is unknown or associated with nothing)."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for raw in data["floating_ips"]:
        fip = FloatingIp(**raw)
        if fip.address == address:
            return fip.target(time.time())
    return None
