"""A small OpenStack API on loopback HTTP, so the real openstacksdk can be run against the lab's cloud.

It answers the subset adapters/cloud.py uses, on one port:

    POST /v3/auth/tokens                  Keystone: password auth -> X-Subject-Token + a catalog
                                          pointing at /networking, /compute and /dns on this server
    GET  /networking/v2.0/floatingips     Neutron: ?floating_ip_address= filter
    GET  /networking/v2.0/floatingips/ID
    PUT  /networking/v2.0/floatingips/ID  port_id / fixed_ip_address; `If-Match: revision_number=N`
                                          -> 412 when the revision moved on; each change bumps it
    GET  /networking/v2.0/ports           ?device_id= filter; GET /ports/ID
    GET  /compute/v2.1/servers[/detail]   Nova: ?name= (a regex search, as Nova's is); /servers/ID
    GET|PUT /dns/v2/zones/...             Designate: zones and A recordsets (lab/designate.py); the
                                          lab's DNS server (dnsserver.py) answers changes at once

plus the version documents the SDK discovers endpoints with (lab/cloudbodies.py builds every
body). Tokens expire after `token_ttl` seconds and are refused (401) after that, as Keystone's are;
`expire_tokens()` ends them all now, so a test can see the client authenticate again. The state
(lab/cloudstate.py) may live in a JSON file, so a restarted API keeps the association, and the
floating IP forwarder reads it there.

Tests drive faults in-process: `fail_next` answers the next matching requests with an error status,
`before_next` runs a change (another operator's, say) just before a matching request is served; the
same over HTTP (`POST /lab/fail-next`, `/lab/clear-faults`, `/lab/touch`, `/lab/expire-tokens`:
`control`) when the API runs as its own process.
Every request is logged in `requests` as (method, path, status).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from toolforgectl.core.errors import LabError
from toolforgectl.lab import cloudbodies as bodies
from toolforgectl.lab.cloudbodies import Reply, selected
from toolforgectl.lab.cloudcompute import Compute
from toolforgectl.lab.cloudstate import CloudState
from toolforgectl.lab.designate import Designate
from toolforgectl.lab.dnsserver import DnsFiles
from toolforgectl.lab.httpserver import LabHTTPServer

CONTROL = "/lab/"  # the lab's own calls (faults), which need no token
NEUTRON_REVISION = re.compile(r"^\s*revision_number=(\d+)\s*$")


@dataclass
class _Fault:
    method: str | None
    path: str | None  # a part of the path that must occur in it
    count: int
    status: int = 0  # answer with this status...
    action: Callable[[], object] | None = None  # ...or run this first and then serve as usual

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and self.method in (None, method) and (self.path is None or self.path in path)


@dataclass
class _Token:
    expires: float  # monotonic; Keystone refuses the token from then on


@dataclass
class _Faults:
    items: list[_Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, method: str, path: str) -> _Fault | None:
        with self.lock:
            for fault in self.items:
                if fault.matches(method, path):
                    fault.count -= 1
                    return fault
        return None


class CloudApi:
    """Keystone, Neutron, Nova and Designate (the parts we use) in a background thread on a loopback
    port; with `dns`, Designate's records are published to the lab's DNS server."""

    def __init__(
        self,
        state: CloudState,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: float = 3600.0,
        dns: DnsFiles | None = None,
        lab_dir: Path | None = None,
    ) -> None:
        self.state = state
        self.designate = Designate(state, dns)
        self.compute = Compute(state, lab_dir)  # what it creates and deletes (lab/cloudcompute.py)
        self.token_ttl = token_ttl
        self.requests: list[tuple[str, str, int]] = []
        self.tokens: dict[str, _Token] = {}
        self.faults = _Faults()
        self.connections: set[socket.socket] = set()  # open keep-alive connections, closed by stop()
        self.server = LabHTTPServer((host, port), _handler_for(self))
        self.host, self.port = host, int(self.server.server_address[1])
        self.designate.base = self.base
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The Keystone auth URL (everything else is found through its catalog)."""
        return f"http://{self.host}:{self.port}/v3"

    def start(self) -> CloudApi:
        """Serve in the background (the DNS server answers the records as they are from now)."""
        self.designate.publish()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the port and every open connection (as a stopped process would)."""
        self.server.shutdown()
        self.server.server_close()
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def write_clouds_yaml(self, path: Path, cloud: str = "lab") -> Path:
        """A clouds.yaml with one entry, `cloud`, that authenticates to this API (JSON is YAML)."""
        auth = {
            "auth_url": self.url,
            "username": bodies.USER,
            "password": bodies.PASSWORD,
            "project_name": bodies.PROJECT,
            "user_domain_name": bodies.DOMAIN,
            "project_domain_name": bodies.DOMAIN,
        }
        entry = {
            "auth": auth,
            "auth_type": "password",
            "region_name": bodies.REGION,
            "identity_api_version": 3,
        }
        path.write_text(json.dumps({"clouds": {cloud: entry}}, indent=1), encoding="utf-8")
        return path

    # Faults ----------------------------------------------------------------------------------

    def fail_next(
        self, count: int = 1, status: int = 500, method: str | None = None, path: str | None = None
    ) -> None:
        """Answer the next `count` requests (of `method`, whose path contains `path`) with `status`."""
        with self.faults.lock:
            self.faults.items.append(_Fault(method, path, count, status=status))

    def before_next(
        self, action: Callable[[], object], method: str | None = None, path: str | None = None
    ) -> None:
        """Run `action` just before the next request (of `method`, path containing `path`) is served."""
        with self.faults.lock:
            self.faults.items.append(_Fault(method, path, 1, action=action))

    def clear_faults(self) -> None:
        """Forget every fault not yet used up."""
        with self.faults.lock:
            self.faults.items.clear()

    def expire_tokens(self) -> None:
        """End every token issued so far, as when they reach their expiry."""
        self.tokens.clear()

    def issued(self) -> int:
        """How many tokens Keystone issued."""
        return sum(1 for method, path, status in list(self.requests) if method == "POST" and status == 201)

    def calls(self, method: str, part: str) -> list[tuple[str, str, int]]:
        """The logged requests of `method` whose path contains `part`."""
        return [r for r in list(self.requests) if r[0] == method and part in r[1]]

    def control(self, action: str, body: dict[str, Any]) -> Reply:
        """The faults above over HTTP (`POST /lab/ACTION`, JSON body), for an API in its own process:
        `fail-next` {count, status, method, path}; `touch` {address, before: {method, path}} (now,
        or just before the next matching request); `expire-tokens`."""
        try:
            match action:
                case "fail-next":
                    where = (body.get("method"), body.get("path"))
                    self.fail_next(int(body.get("count", 1)), int(body.get("status", 500)), *where)
                case "touch" if "before" in body:
                    address, before = str(body["address"]), dict(body["before"])
                    touch = functools.partial(self.state.touch, address)
                    self.before_next(touch, before.get("method"), before.get("path"))
                case "touch":
                    self.state.touch(str(body["address"]))
                case "expire-tokens":
                    self.expire_tokens()
                case "clear-faults":
                    self.clear_faults()
                case "boot":
                    self.compute.boot_mode = str(body.get("mode", "boot"))
                case _:
                    return bodies.error(404, "NotFound", f"no lab control {action!r}")
        except (KeyError, TypeError, ValueError, LabError) as exc:
            return bodies.error(400, "BadRequest", f"lab control {action}: {exc}")
        return 200, {}

    # Keystone --------------------------------------------------------------------------------

    def authenticate(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """A new token and its body for a password request that names our user and project."""
        try:
            identity = body["auth"]["identity"]
            user = identity["password"]["user"]
            project = body["auth"]["scope"]["project"]
        except (KeyError, TypeError):
            return None
        if (user.get("name"), user.get("password"), project.get("name")) != (
            bodies.USER,
            bodies.PASSWORD,
            bodies.PROJECT,
        ):
            return None
        token = secrets.token_hex(16)
        self.tokens[token] = _Token(time.monotonic() + self.token_ttl)
        return token, bodies.token(f"http://{self.host}:{self.port}", self.token_ttl)

    def valid(self, token: str | None) -> bool:
        """Whether `token` was issued and has not expired."""
        found = self.tokens.get(token or "")
        return found is not None and time.monotonic() < found.expires

    # Neutron ---------------------------------------------------------------------------------

    def floating_ips(self, query: dict[str, str]) -> Reply:
        with self.state.lock:
            every = [bodies.floating_ip(f) for f in self.state.floating_ips.values()]
        return 200, {"floatingips": [fip for fip in every if selected(fip, query)]}

    def floating_ip(self, fip_id: str) -> Reply:
        with self.state.lock:
            fip = self.state.floating_ips.get(fip_id)
            return (
                (200, {"floatingip": bodies.floating_ip(fip)})
                if fip
                else bodies.not_found("floatingip", fip_id)
            )

    def update_floating_ip(self, fip_id: str, body: dict[str, Any], if_match: str | None) -> Reply:
        """PUT: associate (port_id, optional fixed_ip_address) or dissociate (port_id null)."""
        change = body.get("floatingip")
        if not isinstance(change, dict) or "port_id" not in change:
            return bodies.error(400, "BadRequest", "this lab cloud only changes a floating IP's port_id")
        with self.state.lock:
            fip = self.state.floating_ips.get(fip_id)
            if fip is None:
                return bodies.not_found("floatingip", fip_id)
            if if_match is not None:
                expected = NEUTRON_REVISION.match(if_match)
                if expected is None:
                    return bodies.error(
                        400, "BadRequest", f"If-Match must be revision_number=N, not {if_match!r}"
                    )
                if int(expected.group(1)) != fip.revision:
                    message = f"Constrained update failed: revision_number {fip.revision} does not match"
                    return bodies.error(
                        412, "RevisionNumberConstraintFailed", message + f" {expected.group(1)}"
                    )
            port_id = change["port_id"]
            fixed_ip = None
            if port_id is not None:
                owner = self.state.port(port_id)
                if owner is None:
                    return bodies.not_found("port", port_id)
                fixed_ip = change.get("fixed_ip_address") or owner.fixed_ip
                if fixed_ip != owner.fixed_ip:
                    return bodies.error(400, "BadRequest", f"port {port_id} has no fixed IP {fixed_ip}")
            self.state.associate(fip_id, port_id, fixed_ip)
            return 200, {"floatingip": bodies.floating_ip(fip)}

    def ports(self, query: dict[str, str]) -> Reply:
        with self.state.lock:
            every = [bodies.port(s) for s in self.state.servers.values()]
            every += [bodies.unbound_port(pid, made) for pid, made in self.state.ports.items()]
        return 200, {"ports": [port for port in every if selected(port, query)]}

    def port_by_id(self, port_id: str) -> Reply:
        if port_id in self.state.ports:
            return 200, {"port": bodies.unbound_port(port_id, self.state.ports[port_id])}
        owner = self.state.port(port_id)
        return (200, {"port": bodies.port(owner)}) if owner else bodies.not_found("port", port_id)

    # Nova ------------------------------------------------------------------------------------

    def servers(self, query: dict[str, str], detail: bool) -> Reply:
        pattern = re.compile(query.get("name", ""))  # Nova's name filter is a regex search
        with self.state.lock:
            found = [s for s in self.state.servers.values() if pattern.search(s.name)]
        return 200, {"servers": [bodies.server(s, self.state, detail) for s in found]}

    def server_by_id(self, server_id: str) -> Reply:
        with self.state.lock:
            server = self.state.servers.get(server_id)
            if server is None:
                message = f"Instance {server_id} could not be found."
                return 404, {"itemNotFound": {"code": 404, "message": message}}
            return 200, {"server": bodies.server(server, self.state, detail=True)}

    @property
    def base(self) -> str:
        """This server's own URL, as its catalog and links name it."""
        return f"http://{self.host}:{self.port}"

    # Routing ---------------------------------------------------------------------------------

    def serve(self, method: str, path: str, query: dict[str, str], body: Any, headers: Any) -> Reply:
        """The reply to one request, after its token was checked (Keystone needs none)."""
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["networking", "v2.0"]:
            return self._neutron(method, parts[2:], query, body, headers.get("If-Match"))
        if parts[:2] == ["compute", "v2.1"] and method == "GET":
            return self._nova(parts[2:], query)
        if parts[:2] == ["compute", "v2.1"]:
            return self._nova_changes(method, parts[2:], body if isinstance(body, dict) else {})
        if parts[:2] == ["dns", "v2"]:
            return self.designate.serve(method, parts[2:], query, body)
        return bodies.error(404, "NotFound", f"no {method} {path} in the lab cloud")

    def _neutron(
        self, method: str, parts: list[str], query: dict[str, str], body: Any, if_match: str | None
    ) -> Reply:
        match (method, parts):
            case ("GET", ["floatingips"]):
                return self.floating_ips(query)
            case ("GET", ["floatingips", fip_id]):
                return self.floating_ip(fip_id)
            case ("PUT", ["floatingips", fip_id]):
                return self.update_floating_ip(fip_id, body if isinstance(body, dict) else {}, if_match)
            case ("GET", ["ports"]):
                return self.ports(query)
            case ("GET", ["ports", port_id]):
                return self.port_by_id(port_id)
        return self._neutron_changes(method, parts, query, body if isinstance(body, dict) else {})

    def _neutron_changes(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> Reply:
        compute = self.compute
        match (method, parts):
            case ("POST", ["ports"]):
                return compute.create_port(dict(body.get("port") or {}))
            case ("DELETE", ["ports", port_id]):
                return compute.delete_port(port_id)
            case ("GET", ["security-groups"]):
                return compute.security_groups(query)
            case ("GET", ["security-groups", group_id]):
                return compute.security_group(group_id)
            case ("POST", ["security-groups"]):
                return compute.create_security_group(dict(body.get("security_group") or {}))
            case ("POST", ["security-group-rules"]):
                return compute.create_rule(dict(body.get("security_group_rule") or {}))
        return bodies.error(404, "NotFound", f"no {method} /{'/'.join(parts)} in the lab's Neutron")

    def _nova(self, parts: list[str], query: dict[str, str]) -> Reply:
        match parts:
            case ["servers"]:
                return self.servers(query, detail=False)
            case ["servers", "detail"]:
                return self.servers(query, detail=True)
            case ["servers", server_id]:
                return self.server_by_id(server_id)
            case ["os-server-groups"]:
                return self.compute.server_groups()
            case ["os-server-groups", group_id]:
                return self.compute.server_group(group_id)
        return bodies.error(404, "NotFound", f"no GET /{'/'.join(parts)} in the lab's Nova")

    def _nova_changes(self, method: str, parts: list[str], body: dict[str, Any]) -> Reply:
        match (method, parts):
            case ("POST", ["servers"]):
                hints = dict(body.get("os:scheduler_hints") or {})
                return self.compute.create_server(dict(body.get("server") or {}), hints)
            case ("DELETE", ["servers", server_id]):
                return self.compute.delete_server(server_id)
            case ("POST", ["os-server-groups"]):
                return self.compute.create_server_group(dict(body.get("server_group") or {}))
        return bodies.error(404, "NotFound", f"no {method} /{'/'.join(parts)} in the lab's Nova")


def _handler_for(api: CloudApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            # the lab's own control calls are never the target of a fault they are setting up
            fault = None if parts.path.startswith(CONTROL) else api.faults.take(method, parts.path)
            if fault is not None and fault.action is not None:
                fault.action()
            headers: dict[str, str] = {}
            if fault is not None and fault.status:
                status, body = bodies.error(
                    fault.status, "LabFault", f"the lab cloud fails this {method} as told"
                )
            else:
                status, body = self._reply(method, parts.path, query, raw, headers)
            api.requests.append((method, parts.path, status))
            self._send(status, body, headers)

        def setup(self) -> None:
            super().setup()
            api.connections.add(self.connection)

        def finish(self) -> None:
            api.connections.discard(self.connection)
            super().finish()

        def _reply(
            self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str]
        ) -> Reply:
            base = f"http://{api.host}:{api.port}"
            if method == "GET" and (versions := bodies.versions(base, path)) is not None:
                return versions
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return bodies.error(400, "BadRequest", "the body is not JSON")
            if method == "POST" and path.startswith(CONTROL):
                return api.control(path.removeprefix(CONTROL), body if isinstance(body, dict) else {})
            if (method, path.rstrip("/")) == ("POST", "/v3/auth/tokens"):
                issued = api.authenticate(body if isinstance(body, dict) else {})
                if issued is None:
                    return bodies.unauthorized("The request you have made requires authentication.")
                headers["X-Subject-Token"] = issued[0]
                return 201, issued[1]
            if not api.valid(self.headers.get("X-Auth-Token")):
                return bodies.unauthorized("The token is expired or was never issued.")
            return api.serve(method, path, query, body, self.headers)

        def _send(self, status: int, body: dict[str, Any] | None, headers: dict[str, str]) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Run the lab's cloud API as a process until SIGTERM (the lab starts it this way)."""
    parser = argparse.ArgumentParser(
        prog="python -m toolforgectl.lab.cloudapi",
        description="The lab's OpenStack API (Keystone, Neutron, Nova, Designate: what toolforgectl calls).",
    )
    parser.add_argument(
        "--state", type=Path, required=True, help="JSON file of the cloud (kept across restarts)"
    )
    parser.add_argument("--clouds-yaml", type=Path, required=True, help="where to write the clouds.yaml")
    parser.add_argument("--cloud", default="lab", help="the entry's name in the clouds.yaml")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="default: any free port (clouds.yaml says which)")
    parser.add_argument(
        "--server", action="append", default=[], metavar="NAME=FIXED_IP", help="a new cloud's"
    )
    parser.add_argument(
        "--floating-ip", action="append", default=[], metavar="ADDRESS=SERVER", help="a new cloud's"
    )
    parser.add_argument(
        "--dns-record", action="append", default=[], metavar="NAME=SERVER",
        help="a new cloud's A record (absolute name, in --dns-zone) holding SERVER's address",
    )  # fmt: skip
    parser.add_argument("--dns-zone", default="", help="the Designate zone of the --dns-records")
    parser.add_argument(
        "--dns-dir", type=Path, default=None, help="the lab DNS server's directory (hosts file, pid file)"
    )
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="seconds a token lasts")
    parser.add_argument("--apply-delay", type=float, default=0.0, help="seconds the router takes to follow")
    parser.add_argument("--lab-dir", type=Path, default=None, help="the lab whose proxy VMs servers boot as")
    args = parser.parse_args(argv)

    dns = DnsFiles(args.dns_dir) if args.dns_dir else None
    api = CloudApi(_initial_state(args), args.host, args.port, args.token_ttl, dns, args.lab_dir)
    api.write_clouds_yaml(args.clouds_yaml, args.cloud)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    api.start()
    stopping.wait()
    api.stop()


def _initial_state(args: argparse.Namespace) -> CloudState:
    """The saved cloud if there is one (a restart keeps the association), else a new one as told."""
    if args.state.exists():
        state = CloudState.load(args.state)
    else:
        state = CloudState(path=args.state)
        for name, _, fixed_ip in (spec.partition("=") for spec in args.server):
            state.add_server(name, fixed_ip)
        for address, _, server in (spec.partition("=") for spec in args.floating_ip):
            state.add_floating_ip(address, server or None)
        for name, _, server in (spec.partition("=") for spec in args.dns_record):
            state.add_record(name, args.dns_zone, server)
    state.apply_delay = args.apply_delay
    state.save()
    return state


if __name__ == "__main__":
    main()
