"""Starting and stopping the lab's server processes (redis-server, ...) and waiting for their ports."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolforgectl.core.errors import LabError, TimedOutError
from toolforgectl.core.waiting import wait_until

START_TIMEOUT = 10.0
KILL_TIMEOUT = 10.0  # only a process stuck in the kernel outlives SIGKILL this long
STOP_POLL = 0.02
FREE_PORT_TRIES = 200


@dataclass
class Process:
    """A server the lab started: its pid, where it listens, and its log."""

    name: str
    pid: int
    host: str
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        """Whether the process still exists."""
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait, then SIGKILL: the process is gone when this returns."""
        terminate(self.pid, self.alive, timeout)
        if self.popen is not None:
            self.popen.wait(timeout=timeout)


def terminate(pid: int, running: Callable[[], bool], timeout: float = 10.0) -> None:
    """SIGTERM `pid`, wait up to `timeout` while `running()`, then SIGKILL and wait for it to go."""
    if not running():
        return
    signal_process(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not running(), f"pid {pid} to exit on SIGTERM", timeout, STOP_POLL)
    except TimedOutError:
        signal_process(pid, signal.SIGKILL)
        wait_until(lambda: not running(), f"pid {pid} to die of SIGKILL", KILL_TIMEOUT, STOP_POLL, LabError)


def signal_process(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to `pid`, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def free_port(host: str = "127.0.0.1", ports: range | None = None) -> int:
    """A TCP port on `host` (an IPv4 or IPv6 address, or "" for all) that nothing listens on now.

    The caller binds it later, so another process may take it in between: the lab, the tests and
    webservice-runner (as the original did) accept that. Without `ports`, the kernel picks one from
    its ephemeral range; with `ports`, one is picked at random in that range, and a range below the
    ephemeral one (32768 and up on Linux) cannot be handed to an outgoing connection in between.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if ports is None:
        return _bind(family, host, 0)
    for _ in range(FREE_PORT_TRIES):
        with contextlib.suppress(OSError):
            return _bind(family, host, random.choice(ports))
    raise LabError(f"no free port in {ports.start}-{ports.stop - 1} on {host or 'any address'}")


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
    process = Process(name, popen.pid, host, port, log, popen)
    try:
        wait_for_port(host, port, process)
    except LabError:
        process.stop()
        raise
    return process


def start_redis(
    directory: Path, host: str = "127.0.0.1", port: int = 0, replica_of: tuple[str, int] | None = None
) -> Process:
    """A redis-server with AOF (timestamped) in `directory`, bound to `host:port`."""
    port = port or free_port(host)
    directory.mkdir(parents=True, exist_ok=True)
    argv = [
        binary("redis-server"),
        "--bind", host, "--port", str(port), "--dir", str(directory),
        "--appendonly", "yes", "--aof-timestamp-enabled", "yes", "--appendfsync", "everysec",
        "--save", "", "--daemonize", "no", "--protected-mode", "no",
    ]  # fmt: skip
    if replica_of is not None:
        argv += ["--replicaof", replica_of[0], str(replica_of[1])]
    return spawn("redis-server", argv, directory / "redis.log", host, port)
