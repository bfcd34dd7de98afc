"""What the lab's cloud creates and deletes (for `deploy proxy` and `proxy remove`): Neutron ports
and security groups, Nova server groups and servers; a created server is a proxy "VM" that the
lab boots from its user data (lab/vm.py) in the background: BUILD, then ACTIVE (or ERROR).

Tests steer a boot with `boot_mode` (`POST /lab/boot {"mode": ...}`): "stuck" leaves the next
server in BUILD, "error" sends it to ERROR, as a hypervisor without room would.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolforgectl.core.errors import ToolforgectlError
from toolforgectl.lab import cloudbodies as bodies
from toolforgectl.lab.cloudbodies import Reply
from toolforgectl.lab.cloudstate import CloudState, Server

VM_ADDRESSES = [f"127.0.0.{n}" for n in range(11, 20)]  # lab/plan.py: the proxies' addresses


class Compute:
    """The create/delete calls of the lab's Neutron and Nova, over one CloudState."""

    def __init__(self, state: CloudState, lab_dir: Path | None) -> None:
        self.state = state
        self.lab_dir = lab_dir  # None: servers are created but nothing boots (API tests)
        self.boot_mode = "boot"  # the next server: boot, stuck (stays BUILD) or error
        self.boots: list[threading.Thread] = []

    # Neutron ---------------------------------------------------------------------------------

    def create_port(self, body: dict[str, Any]) -> Reply:
        made = self.state.new_port(VM_ADDRESSES, str(body.get("name", "")))
        if made is None:
            return bodies.error(409, "IpAddressGenerationFailure", "No more IP addresses on network lab.")
        with self.state.lock:
            wanted = [str(ident) for ident in body.get("security_groups") or []]  # ids, as Neutron takes them
            groups = [
                self.state.security_groups[i]["name"] for i in wanted if i in self.state.security_groups
            ]
            self.state.ports[made[0]]["security_groups"] = groups
        self.state.save()
        return 201, {"port": bodies.unbound_port(made[0], self.state.ports[made[0]])}

    def delete_port(self, port_id: str) -> Reply:
        with self.state.lock:
            if self.state.ports.pop(port_id, None) is None:
                return bodies.not_found("port", port_id)
        self.state.save()
        return 204, None

    def security_groups(self, query: dict[str, str]) -> Reply:
        with self.state.lock:
            found = [bodies.security_group(g) for g in self.state.security_groups.values()]
        wanted = [
            g for g in found if all(str(g.get(k)) == v for k, v in query.items() if k in ("name", "id"))
        ]
        return 200, {"security_groups": wanted}

    def security_group(self, group_id: str) -> Reply:
        group = self.state.security_groups.get(group_id)
        return (
            (200, {"security_group": bodies.security_group(group)})
            if group
            else bodies.not_found("securitygroup", group_id)
        )

    def create_security_group(self, body: dict[str, Any]) -> Reply:
        ident = str(uuid.uuid4())
        group: dict[str, Any] = {"id": ident, "name": str(body.get("name", "")), "rules": []}
        with self.state.lock:
            self.state.security_groups[ident] = group
        self.state.save()
        return 201, {"security_group": bodies.security_group(group)}

    def create_rule(self, body: dict[str, Any]) -> Reply:
        with self.state.lock:
            group = self.state.security_groups.get(str(body.get("security_group_id")))
            if group is None:
                return bodies.not_found("securitygroup", str(body.get("security_group_id")))
            rule = {"id": str(uuid.uuid4()), **{k: v for k, v in body.items() if k != "security_group_id"}}
            group["rules"].append(rule)
        self.state.save()
        return 201, {"security_group_rule": {**rule, "security_group_id": group["id"]}}

    # Nova ------------------------------------------------------------------------------------

    def server_groups(self) -> Reply:
        with self.state.lock:
            return 200, {"server_groups": [self._group(g) for g in self.state.server_groups.values()]}

    def server_group(self, group_id: str) -> Reply:
        with self.state.lock:
            group = self.state.server_groups.get(group_id)
            if group is None:
                return 404, {"itemNotFound": {"code": 404, "message": f"Server group {group_id} not found."}}
            return 200, {"server_group": self._group(group)}

    def create_server_group(self, body: dict[str, Any]) -> Reply:
        ident = str(uuid.uuid4())
        policies = list(body.get("policies") or [body.get("policy", "anti-affinity")])
        group: dict[str, Any] = {"id": ident, "name": str(body.get("name", "")), "policies": policies}
        with self.state.lock:
            self.state.server_groups[ident] = group
        self.state.save()
        return 200, {"server_group": self._group(group)}

    def _group(self, group: dict[str, Any]) -> dict[str, Any]:
        members = [s.id for s in self.state.servers.values() if s.group == group["id"]]
        return bodies.server_group(group, members)

    def create_server(self, body: dict[str, Any], hints: dict[str, Any]) -> Reply:
        """Bind the given port (or a new one) to a new server in BUILD, and boot it in the background."""
        name = str(body.get("name", ""))
        networks = body.get("networks") or []
        with self.state.lock:
            if any(s.name == name for s in self.state.servers.values()):
                return 409, {"conflictingRequest": {"code": 409, "message": f"server {name} exists"}}
            wanted = next((n["port"] for n in networks if isinstance(n, dict) and "port" in n), None)
            if wanted is not None and wanted not in self.state.ports:
                return 400, {"badRequest": {"code": 400, "message": f"Port {wanted} is not usable."}}
        port = (wanted, self.state.ports[wanted]["fixed_ip"]) if wanted else self.state.new_port(VM_ADDRESSES)
        if port is None:
            return 403, {"forbidden": {"code": 403, "message": "Quota exceeded for ports."}}
        groups = [str(g.get("name")) for g in body.get("security_groups") or [] if isinstance(g, dict)]
        if wanted is not None:  # as real Nova does: a port it is given keeps its own groups
            groups = list(self.state.ports[wanted].get("security_groups") or [])
        server = Server(str(uuid.uuid4()), name, port[0], port[1], "BUILD", hints.get("group"), groups)
        with self.state.lock:
            made = self.state.ports.pop(port[0], None)
            server.given_port = made if wanted is not None else None
            self.state.servers[server.id] = server
        self.state.save()
        user_data = base64.b64decode(body.get("user_data") or b"").decode("utf-8")
        mode, self.boot_mode = self.boot_mode, "boot"
        self._background(lambda: self._boot(server, user_data, mode))
        return 202, {"server": {"id": server.id, "links": [], "adminPass": "lab"}}

    def delete_server(self, server_id: str) -> Reply:
        """Stop the VM's processes (lab/vm.py), then forget the server. Its port goes with it only
        if Nova made it: one the server was given stays, unbound (deploy's rollback and `proxy
        remove` delete it by name, as they must with real Nova)."""
        with self.state.lock:
            server = self.state.servers.get(server_id)
        if server is None:
            return 404, {
                "itemNotFound": {"code": 404, "message": f"Instance {server_id} could not be found."}
            }
        if self.lab_dir is not None:
            from toolforgectl.lab import vm

            vm.halt(self.lab_dir, server.name)
        with self.state.lock:
            self.state.servers.pop(server_id, None)
            if server.given_port is not None:
                self.state.ports[server.port_id] = server.given_port
        self.state.save()
        return 204, None

    def _boot(self, server: Server, user_data: str, mode: str) -> None:
        if mode == "stuck":
            return
        status = "ERROR"
        if mode == "boot" and self.lab_dir is not None:
            from toolforgectl.lab import vm

            try:
                vm.boot(self.lab_dir, server.name, server.fixed_ip, user_data)
                status = "ACTIVE"
            except (ToolforgectlError, OSError, ValueError) as exc:
                vm.failed(self.lab_dir, server.name, exc)
        elif mode == "boot":
            status = "ACTIVE"
        with self.state.lock:
            if server.id in self.state.servers:
                server.status = status
        self.state.save()

    def _background(self, work: Callable[[], None]) -> None:
        thread = threading.Thread(target=work, daemon=True)
        self.boots.append(thread)
        thread.start()
