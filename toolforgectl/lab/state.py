"""The lab's state file: every process it started (by role) and every proxy's URLs, in one JSON file.

Schema (version 1), designed so that later work can add roles without changing it:

    {"version": 1, "dir": "...", "config": "<dir>/fleet.yaml",
     "processes": [{"role": "redis"|"nginx"|"tool"|..., "name": "...", "pid": 123,
                    "pgid": 123, "host": "127.0.0.1", "port": 6379, "log": "...",
                    "marks": ["redis-server", "127.0.0.1:6379"],  # must all be in its cmdline
                    "proxy": "proxy-01" (or null), "tool": "hello" (or null)}],
     "proxies": {"proxy-01": {"address": ..., "redis": ..., "http": ..., "https": ..., "internal": ...}},
     "tools": {"hello": {"backend": "http://127.0.0.1:PORT", "url": "https://.../hello/"}},
     "hiera": "<dir>/hiera.yaml", "kube_api": "http://127.0.0.1:PORT" (or "": one proxy, no API),
     "floating_ip": "https://127.0.0.10:PORT" (or ""),
     "cloud": {"kind": "fake"|"openstack", ...where its API and logs are} (or {}: one proxy, no cloud)}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolforgectl.adapters.processes import Process, group_members, stop_group
from toolforgectl.core.errors import LabError

STATE_VERSION = 1
STATE_FILE = "lab.json"
LOCK_FILE = "lab.lock"
DEFAULT_DIR = Path("~/.local/state/toolforgectl/lab")


@dataclass
class ProcessRecord:
    """One process the lab started, enough to find and stop it later by pid."""

    role: str
    name: str
    pid: int
    host: str
    port: int
    log: str
    marks: list[str]  # every one appears in /proc/<pid>/cmdline while it is ours
    proxy: str | None = None
    tool: str | None = None
    pgid: int | None = None  # its process group: it and all it started (None in older state: = pid)

    @classmethod
    def of(cls, role: str, process: Process, marks: list[str], **labels: str) -> ProcessRecord:
        """Record `process`, recognisable by `marks` (strings of its command line)."""
        return cls(
            role, process.name, process.pid, process.host, process.port, str(process.log), marks,
            **labels, pgid=process.group,
        )  # fmt: skip

    def alive(self) -> bool:
        """Whether this pid still runs the program the lab started (pids get reused; zombies are gone)."""
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        text = cmdline.replace(b"\0", b" ").decode("utf-8", "replace")
        return bool(text) and all(mark in text for mark in self.marks)

    @property
    def group(self) -> int:
        """The process group it leads."""
        return self.pgid or self.pid

    def running(self) -> bool:
        """Whether it, or anything it started, still runs: what `stop` would stop.

        A live leader of the group must be the program the lab started (pids get reused); once the
        leader is gone, whoever is still in its group was started by it (a group's number stays
        taken while it has members, so it cannot have been reused)."""
        self._reap()
        members = group_members(self.group)
        return bool(members) and (self.group not in members or self.alive())

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it and everything it started (adapters/processes.stop_group), even a child that
        ignores SIGTERM or outlived its parent; all gone when this returns. Never signals a group
        whose number was reused."""
        if self.running():
            stop_group(self.group, timeout)
        self._reap()

    def _reap(self) -> None:
        # When the caller started it (tests), reap it, so that its zombie does not linger.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)


@dataclass
class LabState:
    """Everything `lab status` and `lab down` need to know."""

    dir: str
    config: str
    processes: list[ProcessRecord] = field(default_factory=list)
    proxies: dict[str, dict[str, str]] = field(default_factory=dict)
    tools: dict[str, dict[str, str]] = field(default_factory=dict)
    version: int = STATE_VERSION
    hiera: str = ""
    kube_api: str = ""
    floating_ip: str = ""  # a lab of several proxies: the public URL, through the floating IP
    cloud: dict[str, str] = field(default_factory=dict)  # a lab of several proxies: which cloud, where

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (also what `lab status --json` shows)."""
        return asdict(self)

    def save(self) -> None:
        """Write atomically, so a crash mid-write never leaves half a state file."""
        path = Path(self.dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def state_dir(option: Path | None) -> Path:
    """The lab directory from `--dir`, else the default under ~/.local/state."""
    return (option or DEFAULT_DIR).expanduser().resolve()


def load(directory: Path) -> LabState | None:
    """The saved state in `directory`, or None when no lab was started there."""
    path = directory / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(
            f"{path}: unreadable lab state ({exc}); remove it after checking for processes"
        ) from None
    if data.get("version") != STATE_VERSION:
        raise LabError(f"{path}: lab state version {data.get('version')} is not {STATE_VERSION}")
    processes = [ProcessRecord(**item) for item in data.get("processes", [])]
    return LabState(
        data["dir"], data["config"], processes, data.get("proxies", {}), data.get("tools", {}),
        hiera=data.get("hiera", ""), kube_api=data.get("kube_api", ""),
        floating_ip=data.get("floating_ip", ""), cloud=data.get("cloud", {}),
    )  # fmt: skip


@contextlib.contextmanager
def changing(directory: Path) -> Iterator[None]:
    """Hold the lab's state lock while its state is read, changed and saved by a process other
    than `lab up` (converge restarting two proxies' daemons at once, a server deleted): without
    it, the last to save would drop the others' records."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove(directory: Path) -> None:
    """Forget the lab in `directory` (its logs and data stay for reading)."""
    (directory / STATE_FILE).unlink(missing_ok=True)
