"""Host-name backends, as the original's routes name grid hosts (issue 10 C.1), against a real DNS
server: dnsmasq on loopback, answering from a hosts file the test rewrites (SIGHUP re-reads it)."""

from __future__ import annotations

import getpass
import os
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.lua.proxyclient import Proxy, access_log_line, error_log, until
from tests.lua.test_urlproxy import ACTOR, sample_tool, store
from toolforgectl.adapters.processes import Process, binary, free_port, spawn
from toolforgectl.core import validate

NAME = "grid-1.tools.test"
FIRST, SECOND = "127.0.0.2", "127.0.0.3"  # two "grid hosts" on loopback


@dataclass
class DnsServer:
    """dnsmasq answering for the names of its hosts file, with a TTL of 1 s."""

    process: Process
    hosts: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.process.port}"

    def serve(self, records: dict[str, str]) -> None:
        """Answer `records` (name -> address) from now on: rewrite the hosts file, then SIGHUP."""
        self.hosts.write_text("".join(f"{address} {name}\n" for name, address in records.items()))
        os.kill(self.process.pid, signal.SIGHUP)


@pytest.fixture
def dns(tmp_path: Path) -> Iterator[DnsServer]:
    hosts = tmp_path / "dns" / "hosts"
    hosts.parent.mkdir()
    hosts.write_text(f"{FIRST} {NAME}\n")
    port = free_port()
    argv = [
        binary("dnsmasq", "/usr/sbin/dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null",
        # Authoritative for .test: a name the hosts file lacks does not exist (NXDOMAIN), as in a
        # real zone; without --local dnsmasq would answer REFUSED, which counts as a DNS failure.
        "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", "--local=/test/", "--local-ttl=1",
        f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces",
        f"--pid-file={hosts.parent / 'dnsmasq.pid'}", f"--user={getpass.getuser()}",
        f"--log-facility={hosts.parent / 'dnsmasq.log'}",
    ]  # fmt: skip
    process = spawn("dnsmasq", argv, hosts.parent / "stdout.log", "127.0.0.1", port)  # it answers TCP too
    try:
        yield DnsServer(process, hosts)
    finally:
        process.stop()


@dataclass
class GridHosts:
    """Two sample tools on the same port of two loopback addresses: the addresses NAME may have."""

    port: int
    first: Process
    second: Process


def _port_free_on(*hosts: str) -> int:
    while True:
        port = free_port(hosts[0])
        try:
            for host in hosts[1:]:
                with socket.create_server((host, port)):
                    pass
        except OSError:
            continue
        return port


@pytest.fixture
def grid(tmp_path: Path) -> Iterator[GridHosts]:
    port = _port_free_on(FIRST, SECOND)
    first = sample_tool("first", tmp_path / "first.log", FIRST, port)
    try:
        second = sample_tool("second", tmp_path / "second.log", SECOND, port)
        try:
            yield GridHosts(port, first, second)
        finally:
            second.stop()
    finally:
        first.stop()


def name_routed_lab(own_lab: Callable[..., Proxy], dns: DnsServer, grid: GridHosts) -> Proxy:
    """A lab resolving with `dns`, where the tool `grid` routes to NAME (as redis-cli wrote it)."""
    proxy = own_lab(resolver=dns.address, resolver_min_ttl=1, error_log_interval=1)
    store(proxy).set_route("grid", ".*", validate.backend(f"http://{NAME}:{grid.port}"), ACTOR)
    proxy.caught_up()
    return proxy


def test_a_name_routed_tool_is_served_and_then_from_the_front(
    own_lab: Callable[..., Proxy], dns: DnsServer, grid: GridHosts
) -> None:
    proxy = name_routed_lab(own_lab, dns, grid)
    reply = proxy.get("/grid/first?x=1")
    assert reply.status == 200 and reply.json()["tool"] == "first"
    assert reply.json()["uri"] == "/grid/first?x=1"
    assert "path=slow" in access_log_line(proxy, "/grid/first?x=1")  # resolved there, once
    assert proxy.backend_of("/grid/second") == "first"
    line = access_log_line(proxy, "/grid/second")
    assert "path=front" in line and f"backend={FIRST}:{grid.port}" in line  # no DNS on the hot path


def test_a_changed_record_is_followed_and_a_removed_one_ends_routing(
    own_lab: Callable[..., Proxy], dns: DnsServer, grid: GridHosts
) -> None:
    proxy = name_routed_lab(own_lab, dns, grid)
    assert proxy.backend_of("/grid/") == "first"
    dns.serve({NAME: SECOND})
    # Routes stay cached for 60 s (cache_ttl) and nothing was written: only the record's TTL
    # (1 s here) makes the proxy ask again.
    took = until(lambda: proxy.backend_of("/grid/") == "second", timeout=15)
    print(f"changed record followed after {took:.1f} s")
    dns.serve({})  # NXDOMAIN: the grid host is gone, its address may be another VM's by now
    until(lambda: proxy.get("/grid/").status == 502, timeout=15)
    assert f"host name {NAME} does not exist" in error_log(proxy)


def test_a_dns_outage_keeps_serving_the_last_address(
    own_lab: Callable[..., Proxy], dns: DnsServer, grid: GridHosts
) -> None:
    proxy = name_routed_lab(own_lab, dns, grid)
    assert proxy.backend_of("/grid/") == "first"
    dns.process.stop()
    # The TTL ran out and the refresher's attempt failed: from here on only the kept address serves.
    wait_until(lambda: f"cannot resolve {NAME}" in error_log(proxy), "a failed re-resolution")
    assert f"keeping {FIRST}" in error_log(proxy)
    assert [proxy.backend_of(f"/grid/outage-{i}") for i in range(10)] == ["first"] * 10
    assert "path=front" in access_log_line(proxy, "/grid/outage-9")
