"""Starting and stopping the lab's server processes (redis-server, ...) and waiting for their ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolforgectl.adapters.render import RedisSite, redis_conf
from toolforgectl.core.config import DataPlane
from toolforgectl.core.errors import ToolforgectlError

START_TIMEOUT = 10.0


class LabError(ToolforgectlError):
    """A lab process could not be started or stopped."""


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
    deadline = time.monotonic() + timeout
    while running() and time.monotonic() < deadline:
        time.sleep(0.02)
    if running():
        signal_process(pid, signal.SIGKILL)
        while running():
            time.sleep(0.02)


def signal_process(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to `pid`, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, process: Process | None = None, timeout: float = START_TIMEOUT
) -> None:
    """Return once `host:port` accepts connections; fail early if `process` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if process is not None and not process.alive():
                raise LabError(f"{process.name} exited during start; see {process.log}") from None
            time.sleep(0.05)
    raise LabError(f"nothing answered on {host}:{port} within {timeout:.0f}s")


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
    """
    return spawn("redis-server", [binary("redis-server"), str(conf), *overrides], log, host, port)
