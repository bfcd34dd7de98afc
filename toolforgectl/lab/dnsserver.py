"""The lab's DNS server: dnsmasq on loopback answering what the lab's Designate holds, as BIND does
for a real Designate.

The lab's cloud API (cloudapi.py) owns the records; after every change it writes them to a hosts
file and sends dnsmasq SIGHUP, which re-reads it (`publish`). dnsmasq runs unprivileged and
touches no system file: no config file, no /etc/hosts, no upstream resolvers, its pid file and log
in the lab's directory. It answers only for the lab's zone, authoritatively (a name it lacks is
NXDOMAIN), with a TTL of one second, so a resolver-side cache never hides a failover for long.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolforgectl.adapters.processes import Process, binary, spawn


@dataclass(frozen=True)
class DnsFiles:
    """Where the lab's DNS server keeps its hosts file, pid file and log."""

    directory: Path

    @property
    def hosts(self) -> Path:
        """The records dnsmasq answers, one `address name` line each."""
        return self.directory / "hosts"

    @property
    def pid_file(self) -> Path:
        """dnsmasq's pid: who `publish` signals."""
        return self.directory / "dnsmasq.pid"


def start(files: DnsFiles, zone: str, host: str, port: int) -> Process:
    """dnsmasq answering for `zone` from `files.hosts` on `host:port` (UDP and TCP)."""
    files.directory.mkdir(parents=True, exist_ok=True)
    if not files.hosts.exists():
        files.hosts.write_text("", encoding="utf-8")
    argv = [
        binary("dnsmasq", "/usr/sbin/dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null",
        "--no-resolv", "--no-hosts", f"--addn-hosts={files.hosts}", f"--local=/{zone.rstrip('.')}/",
        "--local-ttl=1", f"--port={port}", f"--listen-address={host}", "--bind-interfaces",
        f"--pid-file={files.pid_file}", f"--user={getpass.getuser()}",
        f"--log-facility={files.directory / 'dnsmasq.log'}",
    ]  # fmt: skip
    return spawn("dnsmasq", argv, files.directory / "stdout.log", host, port)  # it answers TCP too


def publish(files: DnsFiles, records: Mapping[str, Sequence[str]]) -> None:
    """Make dnsmasq answer `records` (absolute name -> addresses) from now on: the hosts file is
    replaced atomically, then dnsmasq is told to re-read it (when it runs)."""
    lines = "".join(
        f"{address} {name.rstrip('.')}\n"
        for name, addresses in sorted(records.items())
        for address in addresses
    )
    partial = files.hosts.with_name(f".{files.hosts.name}.{os.getpid()}")
    partial.write_text(lines, encoding="utf-8")
    partial.replace(files.hosts)
    with contextlib.suppress(OSError, ValueError):  # not running (yet): it reads the file when it starts
        os.kill(int(files.pid_file.read_text(encoding="utf-8").strip()), signal.SIGHUP)
