"""Starting local server processes (redis-server, nginx, the daemons) in groups of their own, waiting
for their ports, and stopping each with everything it started."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolforgectl.adapters.render import RedisSite, redis_conf
from toolforgectl.core.config import DataPlane
from toolforgectl.core.errors import LabError, TimedOutError
from toolforgectl.core.waiting import wait_until

START_TIMEOUT = 30.0  # a loaded machine starts nginx, Redis and Python daemons slowly
KILL_TIMEOUT = 10.0  # only a process stuck in the kernel outlives SIGKILL this long
STOP_POLL = 0.02
LEFTOVER_GRACE = 2.0  # after a group's leader exited, what it left behind has this long to follow
FREE_PORT_TRIES = 200
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Where the lab's and the tests' servers listen: above most services' well-known ports, below
# Linux's default ephemeral range (32768-60999; `server_ports` says why not in it).
LAB_PORTS = (20000, 32767)
LAB_PORTS_ENV = "TOOLFORGECTL_LAB_PORTS"  # LOW-HIGH instead of LAB_PORTS (see lab_ports)


@dataclass
class Process:
    """A server the lab started: its pid and process group, where it listens, and its log.

    `spawn` starts each in a session of its own, so its group (`pgid`, the same number as its pid)
    holds it and everything it starts: a web server's workers, a runner's server and that server's
    children. Stopping the group stops them all, even those that ignore SIGTERM.
    """

    name: str
    pid: int
    host: str
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    pgid: int | None = None  # None: the same as `pid`

    @property
    def group(self) -> int:
        """The process group to stop."""
        return self.pgid or self.pid

    def alive(self) -> bool:
        """Whether the process itself still runs (its group may outlive it; see `stop`)."""
        if self.popen is not None:
            return self.popen.poll() is None
        return self.pid in group_members(self.group)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process and its whole group (see `stop_group`); all gone when this returns."""
        stop_group(self.group, timeout)
        if self.popen is not None:
            self.popen.wait(timeout=timeout)


def stop_group(pgid: int, timeout: float = 10.0) -> None:
    """Stop every process of group `pgid`, whose leader (pid `pgid`) started the rest.

    SIGTERM to the whole group, as systemd does; the leader gets up to `timeout` to finish (a
    webservice-runner unregisters, nginx lets its workers drain). Whatever is still there once the
    leader is gone gets `LEFTOVER_GRACE` more, then SIGKILL, and this returns once nothing is left:
    a child that ignores SIGTERM, or one whose parent was SIGKILLed, cannot outlive the lab. Only a
    process that moved to a group of its own (setsid) escapes, as it would a systemd KillMode=process.
    """
    if not group_members(pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(TimedOutError):
        wait_until(lambda: pgid not in group_members(pgid), f"process {pgid} to exit", timeout, STOP_POLL)
    with contextlib.suppress(TimedOutError):
        what = f"what process {pgid} left behind to exit"
        wait_until(lambda: not group_members(pgid), what, LEFTOVER_GRACE, STOP_POLL)
    if group_members(pgid):
        signal_group(pgid, signal.SIGKILL)
        what = f"process group {pgid} to die of SIGKILL"
        wait_until(lambda: not group_members(pgid), what, KILL_TIMEOUT, STOP_POLL, LabError)


def group_members(pgid: int) -> set[int]:
    """The pids of the live processes in group `pgid` (zombies are dead, only not yet reaped)."""
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # it exited while we looked
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after it.
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to every process of group `pgid`, ignoring a group that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def free_port(host: str = "127.0.0.1", ports: Sequence[int] | None = None) -> int:
    """A TCP port on `host` (an IPv4 or IPv6 address, or "" for all) that nothing listens on now,
    picked at random among `ports` (default: `lab_ports()` outside the kernel's ephemeral range).

    The caller binds it later, so another process may take it in between: the lab, the tests and
    webservice-runner (as the original did) accept that; outside the ephemeral range
    (`server_ports`) at least no outgoing connection can.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    ports = server_ports(*lab_ports()) if ports is None else ports
    for _ in range(FREE_PORT_TRIES):
        with contextlib.suppress(OSError):
            return _bind(family, host, random.choice(ports))
    raise LabError(f"no free port in {min(ports)}-{max(ports)} on {host or 'any address'}")


def lab_ports() -> tuple[int, int]:
    """The range `free_port` picks from by default: `LAB_PORTS`, or `$TOOLFORGECTL_LAB_PORTS` as
    LOW-HIGH. Two labs on one machine (or two test workers) given ranges apart never pick the same
    port, which otherwise one of them can bind between the other's pick and its bind."""
    spelled = os.environ.get(LAB_PORTS_ENV, "")
    if not spelled:
        return LAB_PORTS
    low, _, high = spelled.partition("-")
    if all(n.isascii() and n.isdigit() for n in (low, high)) and 1024 <= int(low) <= int(high) <= 65535:
        return int(low), int(high)
    raise LabError(f"{LAB_PORTS_ENV}={spelled!r} is not LOW-HIGH with ports from 1024 to 65535")


def ephemeral_range(path: Path = EPHEMERAL_RANGE) -> tuple[int, int] | None:
    """The kernel's ephemeral port range (lowest, highest), or None when it cannot be read."""
    try:
        low, high = (int(word) for word in path.read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return None
    return low, high


def server_ports(lowest: int, highest: int, ephemeral: Path = EPHEMERAL_RANGE) -> Sequence[int]:
    """The ports from `lowest` to `highest` outside the kernel's ephemeral range: for a server that
    picks its own port at random (webservice-runner; the lab's and the tests' servers through
    `free_port`), where picking inside that range goes wrong twice.

    The kernel hands those ports to outgoing connections, which can take one before the server binds
    it. And a connection to such a port where nothing listens any more (a tool that died, its route
    not yet replaced) can be given that very port as its source when both ends share an address, as
    the lab's proxy and tools share 127.0.0.1: it connects to itself, the proxy reads its own request
    back as the tool's answer and holds the visitor until the read timeout. All of `lowest` to
    `highest` when the range cannot be read or leaves none of them.
    """
    every = range(lowest, highest + 1)
    found = ephemeral_range(ephemeral)
    if found is None:
        return every
    low, high = found
    outside = [*range(lowest, min(low, highest + 1)), *range(max(high + 1, lowest), highest + 1)]
    return outside or every


def free_port_on(hosts: tuple[str, ...]) -> int:
    """A TCP port free on every one of `hosts` now: the lab's proxies each listen on one number,
    on addresses of their own, as proxy VMs do (the same caveat as `free_port`)."""
    for _ in range(FREE_PORT_TRIES):
        port = free_port(hosts[0])
        with contextlib.suppress(LabError):
            for host in hosts[1:]:
                free_port(host, range(port, port + 1))
            return port
    raise LabError(f"no port free on all of {', '.join(hosts)}")


def _bind(family: socket.AddressFamily, host: str, port: int) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, port))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, process: Process | None = None, timeout: float = START_TIMEOUT
) -> None:
    """Return once `host:port` accepts connections; fail early if `process` dies."""

    def answers() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            if process is not None and not process.alive():
                raise LabError(f"{process.name} exited during start; see {process.log}") from None
            return False

    wait_until(answers, f"something to answer on {host}:{port}", timeout, error=LabError)


def binary(name: str, *fallbacks: str) -> str:
    """The path of a server binary, with the Debian package to install when it is missing."""
    for candidate in (name, *fallbacks):
        found = shutil.which(candidate)
        if found:
            return found
    raise LabError(f"{name} not found: run scripts/setup.sh (it installs the Debian packages)")


def spawn(name: str, argv: list[str], log: Path, host: str, port: int) -> Process:
    """Start `argv` in its own session, output to `log`, and wait until `host:port` answers."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    # start_new_session made it the leader of a new group, numbered as its pid; `stop` ends the group.
    process = Process(name, popen.pid, host, port, log, popen, pgid=popen.pid)
    try:
        wait_for_port(host, port, process)
    except LabError:
        process.stop()
        raise
    return process


def start_redis(
    directory: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    replica_of: tuple[str, int] | None = None,
    plane: DataPlane | None = None,
) -> Process:
    """A redis-server on `host:port` keeping its AOF in `directory`, configured as a proxy's Redis.

    Its redis.conf is rendered from templates/redis/redis.conf.j2 (with `plane`'s settings, the
    defaults otherwise) into `directory`, so tests run against the configuration proxies ship.
    """
    port = port or free_port(host)
    directory.mkdir(parents=True, exist_ok=True)
    site = RedisSite(f"redis-server {host}:{port}", (host,), port, directory, replica_of)
    conf = directory / "redis.conf"
    conf.write_text(redis_conf(site, plane or DataPlane()), encoding="utf-8")
    return start_redis_from(conf, host, port, directory / "redis.log")


def start_redis_from(conf: Path, host: str, port: int, log: Path, *overrides: str) -> Process:
    """A redis-server started from the rendered `conf` and listening on `host:port`; output to `log`.

    `overrides` are directives given after the file (`--port 1234`), which win over the file's.
    Returns once Redis answers PONG: it accepts connections while it still loads its AOF,
    answering every command with LOADING.
    """
    process = spawn("redis-server", [binary("redis-server"), str(conf), *overrides], log, host, port)
    wait_until(
        lambda: _answers_pong(host, port), f"redis-server on {host}:{port} to load its data", error=LabError
    )
    return process


def _answers_pong(host: str, port: int) -> bool:
    """Whether the Redis at `host:port` answers PING with PONG (not LOADING, not silence)."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
