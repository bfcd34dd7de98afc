"""The JSON bodies the lab's OpenStack API answers with: Keystone's token and catalog, the version
documents clients discover endpoints with, Neutron's floating IPs and ports, Nova's servers,
Designate's zones and recordsets, errors.

Only the fields openstacksdk reads, in the shapes the real services send (Keystone v3, Neutron v2.0,
Nova v2.1 without microversions, Designate v2).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from toolforgectl.lab.cloudstate import LAB_NETWORK, CloudState, FloatingIp, Recordset, Server, Zone

USER, PASSWORD, PROJECT, DOMAIN = "toolforgectl", "lab-password", "tools", "Default"
REGION = "RegionOne"
PROJECT_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
Reply = tuple[int, dict[str, Any] | None]  # an HTTP status and the JSON body (None: no body)


def token(base: str, ttl: float) -> dict[str, Any]:
    """A Keystone v3 token body for our user, whose catalog points at `base` (this server)."""
    now = time.time()
    domain = {"id": "default", "name": DOMAIN}
    return {
        "token": {
            "methods": ["password"],
            "issued_at": _iso(now),
            "expires_at": _iso(now + ttl),
            "user": {"id": "u-" + USER, "name": USER, "domain": domain},
            "project": {"id": PROJECT_ID, "name": PROJECT, "domain": domain},
            "roles": [{"id": "r-member", "name": "member"}],
            "catalog": [
                _service("identity", "keystone", f"{base}/v3"),
                _service("network", "neutron", f"{base}/networking"),
                _service("compute", "nova", f"{base}/compute/v2.1"),
                _service("dns", "designate", f"{base}/dns"),
            ],
        }
    }


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _service(kind: str, name: str, url: str) -> dict[str, Any]:
    endpoints = [
        {
            "id": f"{name}-{interface}",
            "interface": interface,
            "region": REGION,
            "region_id": REGION,
            "url": url,
        }
        for interface in ("public", "internal", "admin")
    ]
    return {"id": f"svc-{name}", "type": kind, "name": name, "endpoints": endpoints}


def floating_ip(fip: FloatingIp) -> dict[str, Any]:
    """A Neutron floating IP, its status as the router has it now."""
    now = time.time()
    return {
        "id": fip.id,
        "floating_ip_address": fip.address,
        "fixed_ip_address": fip.fixed_ip,
        "port_id": fip.port_id,
        "router_id": "lab-router" if fip.port_id else None,
        "floating_network_id": "lab-public",
        "status": fip.status(now),
        "description": fip.description,
        "revision_number": fip.revision,
        "project_id": PROJECT_ID,
        "tenant_id": PROJECT_ID,
        "tags": [],
    }


def port(server: Server) -> dict[str, Any]:
    """The Neutron port of `server` (every lab server has exactly one)."""
    return {
        "id": server.port_id,
        "name": server.given_port.get("name", "") if server.given_port else "",
        "device_id": server.id,
        "device_owner": "compute:nova",
        "network_id": LAB_NETWORK,
        "fixed_ips": [{"subnet_id": "lab-subnet", "ip_address": server.fixed_ip}],
        "status": "ACTIVE",
        "admin_state_up": True,
        "revision_number": 1,
        "project_id": PROJECT_ID,
        "tenant_id": PROJECT_ID,
    }


def server(vm: Server, state: CloudState, detail: bool) -> dict[str, Any]:
    """A Nova server; in detail with its addresses, the floating IPs pointing at it included."""
    summary = {"id": vm.id, "name": vm.name, "links": []}
    if not detail:
        return summary
    addresses = [{"version": 4, "addr": vm.fixed_ip, "OS-EXT-IPS:type": "fixed"}]
    for fip in state.floating_ips.values():
        if fip.port_id == vm.port_id:
            addresses.append({"version": 4, "addr": fip.address, "OS-EXT-IPS:type": "floating"})
    hints = {"group": vm.group} if vm.group else {}
    groups = [{"name": name} for name in vm.security_groups]
    return {
        **summary,
        "status": vm.status,
        "tenant_id": PROJECT_ID,
        "addresses": {LAB_NETWORK: addresses},
        "security_groups": groups,
        "os:scheduler_hints": hints,
    }


def unbound_port(port_id: str, made: dict[str, str]) -> dict[str, Any]:
    """A Neutron port created on its own, not (yet) a server's."""
    body = port(Server("", "", port_id, made["fixed_ip"]))
    return {**body, "name": made.get("name", ""), "device_owner": "", "status": "DOWN"}


def security_group(group: dict[str, Any]) -> dict[str, Any]:
    """A Neutron security group with its rules."""
    rules = [{**rule, "security_group_id": group["id"]} for rule in group["rules"]]
    return {**group, "description": "", "rules": rules, "security_group_rules": rules,
            "project_id": PROJECT_ID, "tenant_id": PROJECT_ID, "revision_number": 1}  # fmt: skip


def server_group(group: dict[str, Any], members: list[str]) -> dict[str, Any]:
    """A Nova server group (v2.1 without microversions: `policies`)."""
    return {**group, "members": members, "metadata": {}, "project_id": PROJECT_ID}


def zone(found: Zone, base: str) -> dict[str, Any]:
    """A Designate zone."""
    return {
        "id": found.id,
        "name": found.name,
        "email": "hostmaster@" + found.name.rstrip("."),
        "ttl": 3600,
        "serial": found.serial,
        "status": "ACTIVE",
        "action": "NONE",
        "type": "PRIMARY",
        "version": found.serial,
        "pool_id": "lab-pool",
        "project_id": PROJECT_ID,
        "masters": [],
        "description": None,
        "links": {"self": f"{base}/dns/v2/zones/{found.id}"},
    }


def recordset(record: Recordset, zone_name: str, base: str, status: str = "ACTIVE") -> dict[str, Any]:
    """A Designate recordset (`status` PENDING in the reply to a change, as Designate answers)."""
    return {
        "id": record.id,
        "zone_id": record.zone_id,
        "zone_name": zone_name,
        "name": record.name,
        "type": record.type,
        "records": list(record.records),
        "ttl": record.ttl,
        "status": status,
        "action": "NONE" if status == "ACTIVE" else "UPDATE",
        "version": record.version,
        "project_id": PROJECT_ID,
        "description": None,
        "links": {"self": f"{base}/dns/v2/zones/{record.zone_id}/recordsets/{record.id}"},
    }


def listing(kind: str, items: list[dict[str, Any]], url: str) -> Reply:
    """A Designate list: the items, a self link and the total (no next page: the lab's are short)."""
    return 200, {kind: items, "links": {"self": url}, "metadata": {"total_count": len(items)}}


def designate_error(status: int, kind: str, message: str) -> Reply:
    """An error in Designate's shape."""
    return status, {"code": status, "type": kind, "message": message, "request_id": "req-lab"}


def selected(obj: dict[str, Any], query: dict[str, str]) -> bool:
    """Neutron's list filters: every given field must equal the query's value."""
    return all(str(obj.get(key)) == value for key, value in query.items() if key in obj)


def not_found(kind: str, ident: str) -> Reply:
    """404 for a `kind` (floatingip, port) with id `ident`."""
    return error(404, f"{kind.capitalize()}NotFound", f"{kind} {ident} could not be found.")


def unauthorized(message: str) -> Reply:
    """401, as Keystone and the services' auth middleware answer it."""
    return 401, {"error": {"code": 401, "title": "Unauthorized", "message": message}}


def error(status: int, kind: str, message: str) -> Reply:
    """An error in Neutron's shape, whose `message` openstacksdk shows."""
    return status, {"NeutronError": {"type": kind, "message": message, "detail": ""}}


_KEYSTONE_VERSION = {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z"}
_NEUTRON_VERSION = {"id": "v2.0", "status": "CURRENT"}
_NOVA_VERSION = {
    "id": "v2.1",
    "status": "CURRENT",
    "version": "",
    "min_version": "",
    "updated": "2013-07-23T11:33:21Z",
}


_DESIGNATE_VERSION = {"id": "v2.0", "status": "CURRENT"}


def versions(base: str, path: str) -> Reply | None:
    """The version documents of Keystone (/, /v3), Neutron (/networking), Nova (/compute) and
    Designate (/dns)."""
    match path.rstrip("/"):
        case "" | "/v3":
            doc = {**_KEYSTONE_VERSION, "links": [{"rel": "self", "href": f"{base}/v3/"}]}
            return (
                (200, {"version": doc}) if path.startswith("/v3") else (300, {"versions": {"values": [doc]}})
            )
        case "/networking":
            doc = {**_NEUTRON_VERSION, "links": [{"rel": "self", "href": f"{base}/networking/v2.0/"}]}
            return 200, {"versions": [doc]}
        case "/compute" | "/compute/v2.1":
            doc = {**_NOVA_VERSION, "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}]}
            return (200, {"version": doc}) if path.startswith("/compute/v2.1") else (200, {"versions": [doc]})
        case "/dns":
            doc = {**_DESIGNATE_VERSION, "links": [{"rel": "self", "href": f"{base}/dns/v2"}]}
            return 200, {"versions": [doc]}
    return None
