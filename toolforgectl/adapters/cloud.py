"""The cloud adapter: the only module that imports openstacksdk; the floating IP and the proxies' servers.

What a failover needs from OpenStack is small: find the floating IP and what it points at, find the
port of the server it must point at next, move it there without trampling on anyone else's change,
and wait until the cloud says the move holds. Reads and the writes live in two classes:
`CloudReads` can do nothing but read, so `--dry-run` and `--rehearse` get one of those and cannot
change the cloud by mistake; `Cloud` adds `move_floating_ip` and `update_dns_record`.

The move is a compare-and-swap on Neutron's `revision_number`: the caller passes the revision it
decided on, the adapter checks it against a fresh read and sends it in `If-Match` too, so Neutron
refuses (412) a move over a change made since, even one that lands between that read and the write.
Either way it is a CloudConflictError, and nothing changed.

The failover's DNS step changes one A record through Designate: find the zone, find the record,
replace its addresses. Designate has no If-Match, so the compare-and-swap is ours: the record is
read again just before the write and must still hold what the plan showed (a change in the
moment between that read and the PUT would not be seen; the step verifies afterwards).

Errors are translated here, once: every call is named ("reading floating IP 185.15.56.11 (Neutron)")
so an operator sees which call failed and why. An expired token needs nothing from us: keystoneauth
authenticates again when the API answers 401, and retries the call once.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from toolforgectl.core.config import Cloud as CloudSettings
from toolforgectl.core.errors import (
    CloudConflictError,
    CloudError,
    ConfigError,
    NotFoundError,
    TimedOutError,
)
from toolforgectl.core.waiting import wait_until

DEFAULT_API_TIMEOUT = 30.0  # seconds per API call, unless clouds.yaml sets `api_timeout`
WAIT_INTERVAL = 0.5
DELETE_TIMEOUT = 120.0  # Nova deletes a server in seconds; a loaded compute host takes longer


@dataclass(frozen=True)
class FloatingIP:
    """A floating IP as Neutron describes it now."""

    id: str
    address: str
    port_id: str | None  # None: associated with nothing
    fixed_ip: str | None
    revision: int  # Neutron's revision_number: any change to the floating IP bumps it
    status: str = "ACTIVE"  # ACTIVE once the router forwards to `fixed_ip`; DOWN before, or unassociated


class ServerPort(NamedTuple):
    """The Neutron port of a server, and its fixed IPv4 address (where a floating IP points)."""

    port_id: str
    fixed_ip: str


@dataclass(frozen=True)
class PlannedMove:
    """What `move_floating_ip` would change, read without changing anything (for plans and dry runs)."""

    floating_ip: FloatingIP
    to_server: str
    to: ServerPort

    @property
    def done(self) -> bool:
        """Whether the floating IP points at the server already."""
        return self.floating_ip.port_id == self.to.port_id

    def describe(self) -> str:
        """One line: from where to where, and the revision the move will be made against."""
        fip = self.floating_ip
        return (
            f"floating IP {fip.address}: {fip.fixed_ip or 'nothing'} -> {self.to.fixed_ip} "
            f"({self.to_server}), at revision {fip.revision}"
        )


@dataclass(frozen=True)
class DnsRecord:
    """An A recordset as Designate describes it now."""

    zone: str  # the zone's name, `wmflabs.org.`
    zone_id: str
    name: str  # the record's absolute name, `tools.wmflabs.org.`
    id: str
    records: tuple[str, ...]  # its addresses, sorted
    status: str = "ACTIVE"  # PENDING while Designate pushes a change to its DNS servers


class CloudReads:
    """The calls that only read the cloud: safe in --dry-run and --rehearse."""

    def __init__(self, connection: Any, name: str) -> None:
        self._conn = connection
        self.name = name  # the clouds.yaml entry, in every error message

    def floating_ip(self, address: str) -> FloatingIP:
        """The floating IP with public address `address` (NotFoundError if the cloud has none)."""
        with self._calling(f"reading floating IP {address} (Neutron)"):
            found = list(self._conn.network.ips(floating_ip_address=address))
        if not found:
            raise NotFoundError(f"cloud {self.name}: no floating IP {address} (Neutron lists none)")
        return _floating_ip(found[0])

    def server_port(self, server: str) -> ServerPort:
        """The port and fixed IPv4 address of server `server` (a name or an id)."""
        try:
            with self._calling(f"finding server {server} (Nova)"):
                found = self._conn.compute.find_server(server, ignore_missing=False)
        except NotFoundError:
            raise NotFoundError(
                f"cloud {self.name}: no server {server!r} (Nova knows no such name or id)"
            ) from None
        with self._calling(f"listing the ports of server {server} (Neutron)"):
            ports = list(self._conn.network.ports(device_id=found.id))
        candidates = [ServerPort(p.id, ip) for p in ports if (ip := _ipv4(p.fixed_ips or []))]
        if len(candidates) != 1:
            what = ", ".join(f"{c.port_id} ({c.fixed_ip})" for c in candidates) or "none"
            raise CloudError(
                f"cloud {self.name}: server {server} must have exactly one port with an IPv4 "
                f"address for the floating IP to point at; it has: {what}"
            )
        return candidates[0]

    def plan_move(self, address: str, to_server: str) -> PlannedMove:
        """What moving floating IP `address` to server `to_server` would change, and against which
        revision (`move_floating_ip(address, to_server, plan.floating_ip.revision)` makes it so)."""
        return PlannedMove(self.floating_ip(address), to_server, self.server_port(to_server))

    def wait_associated(
        self, address: str, fixed_ip: str, timeout: float, interval: float = WAIT_INTERVAL
    ) -> FloatingIP:
        """Wait until floating IP `address` points at `fixed_ip` and Neutron says it is ACTIVE (the
        router applied it). An API error while waiting is retried until `timeout`, and named then."""
        seen: list[FloatingIP] = []  # the last read, and the last error: for the timeout's message
        errors: list[CloudError] = []

        def holds() -> bool:
            try:
                seen[:] = [self.floating_ip(address)]
            except CloudError as exc:
                errors[:] = [exc]
                return False
            return seen[-1].fixed_ip == fixed_ip and seen[-1].status == "ACTIVE"

        try:
            wait_until(holds, f"floating IP {address} to point at {fixed_ip}", timeout, interval)
        except TimedOutError:
            now = f"it points at {seen[-1].fixed_ip or 'nothing'}, status {seen[-1].status}" if seen else ""
            last_error = f"last error: {errors[-1]}" if errors else ""
            detail = "; ".join(filter(None, (now, last_error)))
            raise TimedOutError(
                f"cloud {self.name}: floating IP {address} does not point at {fixed_ip} after "
                f"{timeout:g}s: {detail}"
            ) from None
        return seen[-1]

    def security_group(self, name: str) -> tuple[str, set[tuple[int, int, str | None, str | None]]] | None:
        """Security group `name`'s id and its rules (as Rule.key() gives them); None if none."""
        with self._calling(f"finding security group {name} (Neutron)"):
            group = self._conn.network.find_security_group(name)
        if group is None:
            return None
        return str(group.id), {_rule_key(rule) for rule in (group.security_group_rules or [])}

    def server_group_id(self, name: str) -> str | None:
        """The id of server group `name`, if there is one."""
        with self._calling(f"finding server group {name} (Nova)"):
            found = [g for g in self._conn.compute.server_groups() if g.name == name]
        return str(found[0].id) if found else None

    def dns_record(self, zone: str, name: str) -> DnsRecord:
        """The A recordset `name` of Designate zone `zone` (both absolute, with the trailing dot)."""
        found_zone, raw = self._recordset(zone, name)
        return _dns_record(found_zone, raw)

    def _recordset(self, zone: str, name: str) -> tuple[Any, Any]:
        """The SDK's zone and recordset objects (NotFoundError naming which is missing)."""
        with self._calling(f"finding DNS zone {zone} (Designate)"):
            found_zone = self._conn.dns.find_zone(zone, ignore_missing=True)
        if found_zone is None:
            raise NotFoundError(f"cloud {self.name}: no DNS zone {zone} (Designate lists none)")
        with self._calling(f"reading DNS record {name} (Designate)"):
            found = list(self._conn.dns.recordsets(found_zone, name=name, type="A"))
        if len(found) != 1:
            raise NotFoundError(
                f"cloud {self.name}: zone {zone} has {len(found) or 'no'} A recordsets named {name};"
                " create it once by hand (`openstack recordset create`), the failover only changes it"
            )
        return found_zone, found[0]

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Run the SDK call(s) inside as `what`, turning every error of theirs into one of ours."""
        from keystoneauth1 import exceptions as auth_errors
        from openstack import exceptions as sdk_errors

        prefix = f"cloud {self.name}: {what} failed"
        try:
            yield
        except sdk_errors.PreconditionFailedException as exc:
            raise CloudConflictError(f"{prefix}: HTTP 412: {_details(exc)}") from None
        except sdk_errors.NotFoundException as exc:
            raise NotFoundError(f"{prefix}: {_details(exc)}") from None
        except sdk_errors.HttpException as exc:
            raise CloudError(f"{prefix}: HTTP {exc.status_code} from {_url(exc)}: {_details(exc)}") from None
        except auth_errors.Unauthorized:
            raise CloudError(
                f"{prefix}: Keystone refused the credentials of clouds.yaml's {self.name!r} entry"
            ) from None
        except auth_errors.ConnectTimeout as exc:  # no answer within clouds.yaml's api_timeout
            raise CloudError(f"{prefix}: {str(exc).replace('Request', 'request', 1)}") from None
        except auth_errors.ConnectionError as exc:
            raise CloudError(f"{prefix}: {_unreachable(exc)}") from None
        except auth_errors.HttpError as exc:
            raise CloudError(f"{prefix}: Keystone answered HTTP {exc.http_status}: {exc.message}") from None
        except (auth_errors.ClientException, sdk_errors.SDKException) as exc:
            raise CloudError(f"{prefix}: {exc}") from None


class Cloud(CloudReads):
    """The cloud's reads, and the writes a failover makes: the floating IP, the DNS record."""

    @classmethod
    def connect(cls, settings: CloudSettings) -> Cloud:
        """A connection to cloud `settings.name` as clouds.yaml describes it (nothing is sent yet:
        the first call authenticates)."""
        from keystoneauth1 import exceptions as auth_errors
        from openstack import connection, exceptions

        try:
            region = _config_loader(settings.clouds_yaml).get_one(cloud=settings.name)
        # A clouds.yaml of the wrong shape (`clouds: 5`) gets past the SDK as a TypeError.
        except (exceptions.SDKException, auth_errors.ClientException, TypeError, AttributeError) as exc:
            where = settings.clouds_yaml or "clouds.yaml (openstacksdk's search path)"
            raise ConfigError(f"cloud {settings.name!r} in {where}: {exc}") from None
        if region.config.get("api_timeout") is None:  # no call may hang a failover forever
            region.config["api_timeout"] = DEFAULT_API_TIMEOUT
        return cls(connection.Connection(config=region), settings.name)

    def read_only(self) -> CloudReads:
        """The same connection, able to read only (for --dry-run and --rehearse)."""
        return CloudReads(self._conn, self.name)

    def close(self) -> None:
        """Close the connection's HTTP sessions."""
        self._conn.close()

    def move_floating_ip(self, address: str, to_server: str, expect_revision: int) -> FloatingIP:
        """Point floating IP `address` at server `to_server`, if it is still at revision
        `expect_revision`; CloudConflictError (nothing changed) if it is not. Returns the floating
        IP as Neutron has it after the move (the router may not have applied it yet:
        `wait_associated`)."""
        fip = self.floating_ip(address)
        if fip.revision != expect_revision:
            raise self._conflict(address, expect_revision, fip)
        target = self.server_port(to_server)
        what = f"moving floating IP {address} to {to_server} ({target.fixed_ip}) (Neutron PUT)"
        try:
            with self._calling(what):
                moved = self._conn.network.update_ip(
                    fip.id,
                    if_revision=expect_revision,
                    port_id=target.port_id,
                    fixed_ip_address=target.fixed_ip,
                )
        except CloudConflictError:
            raise self._conflict(address, expect_revision, self._reread(address)) from None
        return _floating_ip(moved)

    # Servers (deploy proxy, proxy remove) ---------------------------------------------------

    def ensure_security_group(self, name: str, rules: list[Rule]) -> tuple[str, bool]:
        """The id of security group `name` with (at least) `rules`, created or completed as
        needed; True when anything was added."""
        with self._calling(f"finding security group {name} (Neutron)"):
            group = self._conn.network.find_security_group(name)
        added = False
        if group is None:
            with self._calling(f"creating security group {name} (Neutron)"):
                group = self._conn.network.create_security_group(name=name, description="toolforgectl")
            added = True
        have = {_rule_key(r) for r in (group.security_group_rules or [])}
        for rule in rules:
            if rule.key() in have:
                continue
            with self._calling(f"adding rule {rule} to security group {name} (Neutron)"):
                self._conn.network.create_security_group_rule(security_group_id=group.id, **rule.fields())
            added = True
        return str(group.id), added

    def ensure_server_group(self, name: str) -> tuple[str, bool]:
        """The id of anti-affinity server group `name` (created if missing; True then)."""
        with self._calling(f"finding server group {name} (Nova)"):
            found = [g for g in self._conn.compute.server_groups() if g.name == name]
        if found:
            return str(found[0].id), False
        with self._calling(f"creating server group {name} (Nova)"):
            made = self._conn.compute.create_server_group(name=name, policies=["anti-affinity"])
        return str(made.id), True

    def create_port(self, network: str, name: str, security_groups: tuple[str, ...] = ()) -> ServerPort:
        """A new port on `network` for server `name`, in `security_groups` (names): its fixed IP is
        the new proxy's address. The groups go on the port because Nova applies a server's
        `security_groups` only to the ports it makes itself: a port it is given keeps its own
        (seen against real Nova: the port stayed in the project's `default` group)."""
        ids = []
        for group in security_groups:
            with self._calling(f"finding security group {group} (Neutron)"):
                found = self._conn.network.find_security_group(group)
            if found is None:
                raise NotFoundError(f"cloud {self.name}: no security group {group} (Neutron lists none)")
            ids.append(str(found.id))
        extra = {"security_group_ids": ids} if ids else {}
        with self._calling(f"creating a port on network {network} for {name} (Neutron)"):
            port = self._conn.network.create_port(network_id=network, name=name, **extra)
        address = _ipv4(port.fixed_ips or [])
        if address is None:
            raise CloudError(f"cloud {self.name}: the new port {port.id} has no IPv4 address")
        return ServerPort(str(port.id), address)

    def delete_port(self, port_id: str) -> None:
        """Delete a port (gone already: fine)."""
        with self._calling(f"deleting port {port_id} (Neutron)"):
            self._conn.network.delete_port(port_id, ignore_missing=True)

    def delete_ports_named(self, name: str) -> None:
        """Delete every port called `name` (those `create_port` made for server `name`)."""
        with self._calling(f"listing the ports named {name} (Neutron)"):
            found = [port.id for port in self._conn.network.ports(name=name)]
        for port_id in found:
            self.delete_port(port_id)

    def create_server(self, spec: NewServer) -> str:
        """Create the server `spec` describes (no floating IP) on its port (which carries its
        security groups: `create_port`); its id. It is BUILD until booted."""
        with self._calling(f"creating server {spec.name} (Nova)"):
            server = self._conn.compute.create_server(
                name=spec.name,
                flavor_id=spec.flavor,
                image_id=spec.image,
                networks=[{"port": spec.port_id}],
                user_data=base64.b64encode(spec.user_data.encode()).decode(),
                # no hints at all without a group: Nova refuses `null` (400, seen against real Nova)
                **({"scheduler_hints": {"group": spec.server_group}} if spec.server_group else {}),
            )
        return str(server.id)

    def server_status(self, server: str) -> str | None:
        """Nova's status of server `server` (name or id): BUILD, ACTIVE, ERROR, ...; None if none."""
        with self._calling(f"finding server {server} (Nova)"):
            found = self._conn.compute.find_server(server, ignore_missing=True)
        if found is None:
            return None
        try:
            with self._calling(f"reading server {server} (Nova)"):
                return str(self._conn.compute.get_server(found.id).status)
        except NotFoundError:
            return None  # deleted between the two calls (seen against real Nova, right after a delete)

    def wait_active(self, server: str, timeout: float) -> None:
        """Until server `server` is ACTIVE; CloudError at once if it goes to ERROR (or vanishes),
        TimedOutError naming BUILD if it is still building after `timeout` seconds."""
        seen: list[str | None] = []

        def active() -> bool:
            seen[:] = [self.server_status(server)]
            if seen[0] in ("ERROR", None):
                what = "went to ERROR" if seen[0] else "disappeared"
                raise CloudError(f"cloud {self.name}: server {server} {what} while it was being built")
            return seen[0] == "ACTIVE"

        try:
            wait_until(active, f"server {server} to be ACTIVE", timeout, WAIT_INTERVAL)
        except TimedOutError:
            raise TimedOutError(
                f"cloud {self.name}: server {server} is still {seen[-1] if seen else 'unknown'} after"
                f" {timeout:g}s (stuck in BUILD: see `openstack server show {server}`)"
            ) from None

    def delete_server(self, server: str, timeout: float = DELETE_TIMEOUT) -> bool:
        """Delete server `server` (name or id) and wait until Nova has (at most `timeout` seconds);
        False when there was none. The wait matters to the caller that deletes the port next:
        Nova deletes in the background, and until it has, the port is still bound to the server
        and Neutron refuses a project member's delete (403, seen against real Neutron)."""
        with self._calling(f"deleting server {server} (Nova)"):
            found = self._conn.compute.find_server(server, ignore_missing=True)
            if found is None:
                return False
            self._conn.compute.delete_server(found.id)
        try:
            wait_until(
                lambda: self.server_status(found.id) is None,
                f"server {server} to be deleted",
                timeout,
                WAIT_INTERVAL,
            )
        except TimedOutError:
            raise TimedOutError(
                f"cloud {self.name}: server {server} is still there {timeout:g}s after its delete"
                f" (now {self.server_status(found.id) or 'gone'}: see `openstack server show {found.id}`)"
            ) from None
        return True

    def update_dns_record(
        self, zone: str, name: str, addresses: tuple[str, ...], expect: tuple[str, ...]
    ) -> DnsRecord:
        """Make A recordset `name` of zone `zone` hold `addresses`, if it still holds `expect` (the
        addresses the plan showed); CloudConflictError (nothing changed) if it does not."""
        found_zone, raw = self._recordset(zone, name)
        now = _dns_record(found_zone, raw)
        if now.records != tuple(sorted(expect)):
            raise CloudConflictError(
                f"cloud {self.name}: DNS record {name} changed since it was read: it holds"
                f" {', '.join(now.records) or 'nothing'}, not {', '.join(expect) or 'nothing'}."
                " Nothing was changed: read it again and decide again"
            )
        with self._calling(f"updating DNS record {name} to {', '.join(addresses)} (Designate PUT)"):
            updated = self._conn.dns.update_recordset(raw, records=list(addresses))
        return _dns_record(found_zone, updated)

    def _conflict(self, address: str, expected: int, now: FloatingIP | None) -> CloudConflictError:
        state = (
            f"it is at revision {now.revision}, pointing at {now.fixed_ip or 'nothing'}"
            if now is not None
            else "it could not be read again"
        )
        return CloudConflictError(
            f"cloud {self.name}: the floating IP changed since it was read: {address} was expected at "
            f"revision {expected}; {state}. Nothing was changed: read it again and decide again"
        )

    def _reread(self, address: str) -> FloatingIP | None:
        try:
            return self.floating_ip(address)
        except CloudError:
            return None  # the conflict is the news; a failing read after it must not hide it


@dataclass(frozen=True)
class Rule:
    """One ingress TCP rule of a security group: a port range from a CIDR or from another group."""

    port_min: int
    port_max: int
    cidr: str | None = None
    remote_group: str | None = None

    def key(self) -> tuple[int, int, str | None, str | None]:
        """What makes two rules the same rule."""
        return (self.port_min, self.port_max, self.cidr, self.remote_group)

    def fields(self) -> dict[str, Any]:
        """Neutron's fields of the rule."""
        found: dict[str, Any] = {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp"}
        found |= {"port_range_min": self.port_min, "port_range_max": self.port_max}
        if self.cidr:
            found["remote_ip_prefix"] = self.cidr
        if self.remote_group:
            found["remote_group_id"] = self.remote_group
        return found

    def __str__(self) -> str:
        ports = f"{self.port_min}" if self.port_min == self.port_max else f"{self.port_min}-{self.port_max}"
        return f"tcp {ports} from {self.cidr or self.remote_group}"


@dataclass(frozen=True)
class NewServer:
    """What `create_server` creates."""

    name: str
    flavor: str
    image: str
    port_id: str  # made by `create_port`, in the server's security groups
    user_data: str
    server_group: str | None = None


def _rule_key(raw: Any) -> tuple[int, int, str | None, str | None]:
    fields: dict[str, Any] = raw if isinstance(raw, dict) else dict(raw)
    low, high = fields.get("port_range_min"), fields.get("port_range_max")
    cidr, group = fields.get("remote_ip_prefix") or None, fields.get("remote_group_id") or None
    return (int(low or 0), int(high or 0), cidr, group)


def sdk_connection(clouds_yaml: str, name: str) -> Any:
    """A bare openstacksdk connection as entry `name` of `clouds_yaml`, for the lab, which builds
    its real cloud as that cloud's admin (the catalog, images, flavors, networks, servers): calls
    no operation makes, so `Cloud` has no methods for them. Nothing is sent until the first call."""
    from openstack import connection

    return connection.Connection(config=_config_loader(clouds_yaml).get_one(cloud=name))


def _config_loader(clouds_yaml: str | None) -> Any:
    """openstacksdk's config loader for file `clouds_yaml` only (and the secure.yaml beside it, for
    secrets; not $OS_CLIENT_CONFIG_FILE nor OS_* variables), or, without one, for its usual search
    path and variables, as the `openstack` command uses them."""
    from openstack import config as sdk_config

    if clouds_yaml is None:
        return sdk_config.OpenStackConfig()
    named = Path(clouds_yaml)
    if not named.is_file():
        raise ConfigError(f"cloud.clouds_yaml: {named} does not exist")
    secrets = named.with_name("secure.yaml")
    return sdk_config.OpenStackConfig(
        config_files=[str(named)], secure_files=[str(secrets)], load_envvars=False
    )


def _floating_ip(raw: Any) -> FloatingIP:
    return FloatingIP(
        id=str(raw.id),
        address=str(raw.floating_ip_address),
        port_id=raw.port_id or None,
        fixed_ip=raw.fixed_ip_address or None,
        revision=int(raw.revision_number or 0),
        status=str(raw.status or ""),
    )


def _dns_record(zone: Any, raw: Any) -> DnsRecord:
    return DnsRecord(
        zone=str(zone.name),
        zone_id=str(zone.id),
        name=str(raw.name),
        id=str(raw.id),
        records=tuple(sorted(str(record) for record in raw.records or ())),
        status=str(raw.status or ""),
    )


def _ipv4(fixed_ips: list[dict[str, str]]) -> str | None:
    return next((f["ip_address"] for f in fixed_ips if "." in f.get("ip_address", "")), None)


def _details(exc: Any) -> str:
    """What the API said, without the SDK's own wrapping."""
    return str(getattr(exc, "details", None) or exc.message or exc)


def _url(exc: Any) -> str:
    url = exc.url
    return url.decode("utf-8", "replace") if isinstance(url, bytes) else str(url or "the API")


def _unreachable(exc: Exception) -> str:
    """keystoneauth's connection error in one short line: the URL and the socket's complaint."""
    text = str(exc)
    url = re.search(r"connection to (\S+?):? ", text)
    reason = re.findall(r"\[Errno -?\d+\] [^'\")]+", text)
    where = f"cannot reach {url.group(1)}" if url else "cannot reach the API"
    return f"{where}: {reason[-1]}" if reason else f"{where}: {text}"
