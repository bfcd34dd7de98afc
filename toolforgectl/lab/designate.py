"""The lab cloud's Designate (DNS as a service): zones and A recordsets, the calls openstacksdk's dns
proxy makes to read a record and change its addresses (adapters/cloud.py).

    GET  /dns/v2/zones                    ?name= filter; GET /zones/ID
    GET  /dns/v2/zones/ID/recordsets      ?name= and ?type= filters; GET /recordsets/ID
    PUT  /dns/v2/zones/ID/recordsets/ID   `records`: the new addresses (202, as Designate answers)

The records live in the cloud's state (cloudstate.py). As Designate's workers push a change to
BIND, every change here is handed at once to the lab's DNS server (dnsserver.py), which then
answers it; the lab has no zone creation through the API (`lab up` seeds its one record).
"""

from __future__ import annotations

from typing import Any

from toolforgectl.lab import cloudbodies as bodies
from toolforgectl.lab import dnsserver
from toolforgectl.lab.cloudbodies import Reply, selected
from toolforgectl.lab.cloudstate import CloudState, Recordset
from toolforgectl.lab.dnsserver import DnsFiles


class Designate:
    """Designate's zone and recordset calls over the cloud's state; with `dns`, the lab's DNS
    server answers its records."""

    def __init__(self, state: CloudState, dns: DnsFiles | None = None, base: str = "") -> None:
        self.state = state
        self.dns = dns
        self.base = base  # the API's own URL, for the links in bodies

    def publish(self) -> None:
        """Hand every A record to the lab's DNS server, as Designate's workers update BIND."""
        if self.dns is not None:
            dnsserver.publish(self.dns, self.state.a_records())

    def zones(self, query: dict[str, str]) -> Reply:
        with self.state.lock:
            every = [bodies.zone(z, self.base) for z in self.state.zones.values()]
        return bodies.listing("zones", [z for z in every if selected(z, query)], f"{self.base}/dns/v2/zones")

    def zone_by_id(self, zone_id: str) -> Reply:
        with self.state.lock:
            found = self.state.zones.get(zone_id)
            if found is None:
                return bodies.designate_error(404, "zone_not_found", "Could not find Zone")
            return 200, bodies.zone(found, self.base)

    def recordsets(self, zone_id: str, query: dict[str, str]) -> Reply:
        with self.state.lock:
            found = self.state.zones.get(zone_id)
            if found is None:
                return bodies.designate_error(404, "zone_not_found", "Could not find Zone")
            every = [
                bodies.recordset(r, found.name, self.base)
                for r in self.state.recordsets.values()
                if r.zone_id == zone_id
            ]
        url = f"{self.base}/dns/v2/zones/{zone_id}/recordsets"
        return bodies.listing("recordsets", [r for r in every if selected(r, query)], url)

    def _recordset(self, zone_id: str, recordset_id: str) -> tuple[Recordset, str] | None:
        """The recordset and its zone's name (None: no such recordset in that zone)."""
        found = self.state.recordsets.get(recordset_id)
        if found is None or found.zone_id != zone_id:
            return None
        return found, self.state.zones[zone_id].name

    def recordset_by_id(self, zone_id: str, recordset_id: str) -> Reply:
        with self.state.lock:
            found = self._recordset(zone_id, recordset_id)
            if found is None:
                return bodies.designate_error(404, "recordset_not_found", "Could not find RecordSet")
            return 200, bodies.recordset(*found, self.base)

    def update_recordset(self, zone_id: str, recordset_id: str, body: Any) -> Reply:
        """PUT: replace the records (the only change the lab's Designate takes), then publish."""
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, str) for r in records):
            return bodies.designate_error(
                400, "invalid_object", "this lab's Designate changes only `records`"
            )
        with self.state.lock:
            found = self._recordset(zone_id, recordset_id)
            if found is None:
                return bodies.designate_error(404, "recordset_not_found", "Could not find RecordSet")
            record = self.state.set_records(recordset_id, records)
            reply = bodies.recordset(record, found[1], self.base, status="PENDING")
        self.publish()
        return 202, reply

    def serve(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> Reply:
        """The reply to one request below /dns/v2 (`parts`: the path's parts after it)."""
        match (method, parts):
            case ("GET", ["zones"]):
                return self.zones(query)
            case ("GET", ["zones", zone_id]):
                return self.zone_by_id(zone_id)
            case ("GET", ["zones", zone_id, "recordsets"]):
                return self.recordsets(zone_id, query)
            case ("GET", ["zones", zone_id, "recordsets", recordset_id]):
                return self.recordset_by_id(zone_id, recordset_id)
            case ("PUT", ["zones", zone_id, "recordsets", recordset_id]):
                return self.update_recordset(zone_id, recordset_id, body)
        where = f"{method} /{'/'.join(parts)}"
        return bodies.designate_error(404, "not_found", f"no {where} in the lab's Designate")
