"""The fleet's hosts over SSH (fabric): run commands in batches, read and write files.

One code path for production VMs and the lab's loopback sshd. Every call says whether it changes
the host (`write=True`): in a dry run those are not run but reported as planned, while reads run
as usual, so a plan is made from the real state (as Spicerack's RemoteHosts does).

A host that fails (cannot connect, exits non-zero, times out, presents a host key that is not the
recorded one) is reported in its HostResult and does not stop the other hosts of its batch; the
caller decides whether to go on (`halt_on_failure` stops before the next batch).

Host keys are checked against `remote.known_hosts`: a key that differs from the recorded one is
refused, always; a host never seen is refused unless `remote.accept_new_host_keys` (then it is
recorded, as OpenSSH's StrictHostKeyChecking=accept-new does).
"""

from __future__ import annotations

import io
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Connection
from invoke.exceptions import CommandTimedOut, ThreadException

from toolforgectl.core.config.remote import Remote as Settings
from toolforgectl.core.config.remote import SshHost
from toolforgectl.core.errors import RemoteError

_NO_STATUS = -1  # what fabric reports for a channel that closed without an exit status
_CUT = "the connection ended before the command did"
# `read_file` tells a missing file from a failed read by this exit status of its shell snippet.
_MISSING = 44


@dataclass(frozen=True)
class HostResult:
    """What one command did on one host."""

    host: str
    ok: bool
    exit_code: int | None = None  # None: it did not run to completion (see `error`)
    stdout: str = ""
    stderr: str = ""
    error: str = ""  # why it failed, in one line, when it did not run or exited non-zero
    planned: bool = False  # a write in a dry run: not run, reported

    @property
    def status(self) -> str:
        """One word for a table: ok, planned, failed or skipped."""
        if self.planned:
            return "planned"
        if self.error == SKIPPED:
            return "skipped"
        return "ok" if self.ok else "failed"


SKIPPED = "not run: an earlier batch failed"


class Remote:
    """SSH to the fleet's hosts with one set of settings; reuses one connection per host."""

    def __init__(self, settings: Settings, *, dry_run: bool = False) -> None:
        self.settings = settings
        self.dry_run = dry_run
        self._known_hosts = Path(settings.known_hosts).expanduser()
        self._connections: dict[SshHost, Connection] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()

    def run(
        self,
        hosts: Sequence[SshHost],
        command: str,
        *,
        write: bool,
        sudo: bool | None = None,
        timeout: float | None = None,
        batch: int | None = None,
        halt_on_failure: bool = False,
        progress: Callable[[HostResult], None] = lambda _: None,
    ) -> list[HostResult]:
        """Run the shell `command` on `hosts`, `batch` at a time; one result per host, in order.

        `write`: the command changes the host (planned, not run, in a dry run). `sudo` (default:
        the settings') runs it under `sudo -n`, which fails instead of asking for a password."""
        return self.each(
            hosts,
            lambda host: self._one(host, command, write, sudo, timeout),
            batch=batch,
            halt_on_failure=halt_on_failure,
            progress=progress,
        )

    def each(
        self,
        hosts: Sequence[SshHost],
        action: Callable[[SshHost], HostResult],
        *,
        batch: int | None = None,
        halt_on_failure: bool = False,
        progress: Callable[[HostResult], None] = lambda _: None,
    ) -> list[HostResult]:
        """`action` on every host, the hosts of one batch at once (`batch`, default the settings');
        one result per host, in order. `halt_on_failure`: after a batch with a failure, the later
        batches' hosts are not touched and are reported as skipped."""
        size = batch or self.settings.batch
        results: list[HostResult] = []
        for start in range(0, len(hosts), size):
            group = hosts[start : start + size]
            if halt_on_failure and any(not result.ok for result in results):
                results.extend(HostResult(str(host), False, error=SKIPPED) for host in group)
                continue
            with ThreadPoolExecutor(max_workers=len(group)) as pool:
                done = list(pool.map(action, group))
            for result in done:
                progress(result)
            results.extend(done)
        return results

    def write_command(
        self, host: SshHost, command: str, *, timeout: float | None = None, stdin: str | None = None
    ) -> HostResult:
        """Run `command`, which changes `host`, there (planned, not run, in a dry run), with
        `stdin` as its input (a script for `sh -s`, say)."""
        return self._one(host, command, write=True, sudo=None, timeout=timeout, stdin=stdin)

    def read_command(self, host: SshHost, command: str) -> HostResult:
        """Run `command`, which only reads, on `host` (it runs in a dry run too)."""
        return self._one(host, command, write=False, sudo=None, timeout=None)

    def read_file(self, host: SshHost, path: str) -> str | None:
        """The text of `path` on `host`, or None when it does not exist; RemoteError otherwise."""
        quoted = shlex.quote(path)
        script = f"if [ -e {quoted} ]; then cat -- {quoted}; else exit {_MISSING}; fi"
        result = self._one(host, script, write=False, sudo=None, timeout=None)
        if result.exit_code == _MISSING:
            return None
        _raise_unless_ok(result, f"read {path}")
        return result.stdout

    def write_file(self, host: SshHost, path: str, text: str, *, mode: int = 0o644) -> HostResult:
        """Replace `path` on `host` with `text` atomically (a temporary file renamed over it)."""
        quoted, temporary = shlex.quote(path), shlex.quote(f"{path}.toolforgectl-new")
        script = f"umask 077 && cat > {temporary} && chmod {mode:o} {temporary} && mv -f {temporary} {quoted}"
        return self._one(host, script, write=True, sudo=None, timeout=None, stdin=text)

    def _one(
        self,
        host: SshHost,
        command: str,
        write: bool,
        sudo: bool | None,
        timeout: float | None,
        stdin: str | None = None,
    ) -> HostResult:
        if write and self.dry_run:
            return HostResult(str(host), True, planned=True)
        if self.settings.sudo if sudo is None else sudo:
            command = f"sudo -n sh -c {shlex.quote(command)}"
        seconds = timeout or self.settings.timeout
        started = time.monotonic()
        try:
            done = self._connection(host).run(
                command,
                hide=True,
                warn=True,
                in_stream=_WholeInput(stdin) if stdin is not None else False,
                timeout=seconds,
            )
        except CommandTimedOut:
            self._forget(host)  # the command may still hold the channel
            return HostResult(str(host), False, error=f"timed out after {seconds:g} s")
        except paramiko.BadHostKeyException as exc:
            self._forget(host)
            return HostResult(str(host), False, error=self._changed_key(host, exc))
        except (paramiko.SSHException, OSError, EOFError, ThreadException) as exc:
            # ThreadException: sending stdin failed (the channel ended under it).
            self._forget(host)
            return HostResult(str(host), False, error=_one_line(exc) or type(exc).__name__)
        if done.exited == _NO_STATUS:
            # invoke's timer closed the channel, but reports it as a timeout only when its timer
            # thread has finished by the time it looks: a channel that ended without an exit
            # status after the deadline timed out.
            self._forget(host)
            late = time.monotonic() - started >= seconds
            return HostResult(str(host), False, error=f"timed out after {seconds:g} s" if late else _CUT)
        ok = done.exited == 0
        error = "" if ok else f"exit {done.exited}: {_last_line(done.stderr) or _last_line(done.stdout)}"
        return HostResult(str(host), ok, done.exited, done.stdout, done.stderr, error.rstrip(": "))

    def _connection(self, host: SshHost) -> Connection:
        with self._lock:
            found = self._connections.get(host)
            if found is not None:
                return found
            kwargs: dict[str, object] = {"look_for_keys": not self.settings.identity_file}
            if self.settings.identity_file:
                key = str(Path(self.settings.identity_file).expanduser())
                kwargs |= {"key_filename": key, "allow_agent": False}
            connection = Connection(
                host.host,
                user=self.settings.user,
                port=host.port,
                connect_timeout=int(max(1, self.settings.connect_timeout)),
                connect_kwargs=kwargs,
            )
            # fabric trusts every host key it is shown; production must not.
            if self._known_hosts.exists():
                connection.client.load_host_keys(str(self._known_hosts))
            connection.client.set_missing_host_key_policy(self._policy())
            self._connections[host] = connection
            return connection

    def _policy(self) -> paramiko.MissingHostKeyPolicy:
        if self.settings.accept_new_host_keys:
            return _RecordNewKeys(self._known_hosts, self._lock)
        return _RefuseUnknownKeys(self._known_hosts)

    def _forget(self, host: SshHost) -> None:
        with self._lock:
            connection = self._connections.pop(host, None)
        if connection is not None:
            connection.close()

    def _changed_key(self, host: SshHost, exc: paramiko.BadHostKeyException) -> str:
        seen = exc.key.fingerprint if hasattr(exc.key, "fingerprint") else exc.key.get_base64()[:16]
        entry = f"[{host.host}]:{host.port}" if host.port != 22 else host.host
        return (
            f"host key changed (now {seen}); refused. If the host was rebuilt, check the new key out of"
            f" band, then: ssh-keygen -f {self._known_hosts} -R '{entry}'"
        )


class _WholeInput(io.StringIO):
    """Input sent at once: invoke reads a stream that is not a terminal one byte per 10 ms loop
    (it assumes a person typing), which made a 3 kB file take 30 s to write."""

    def read(self, size: int | None = -1) -> str:
        del size
        return super().read()


class _RefuseUnknownKeys(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # untyped
    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise paramiko.SSHException(
            f"host key of {hostname} is not in {self.known_hosts}; refused (add it, or set"
            " remote.accept_new_host_keys to trust hosts on first use)"
        )


class _RecordNewKeys(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # untyped
    def __init__(self, known_hosts: Path, lock: threading.Lock) -> None:
        self.known_hosts, self.lock = known_hosts, lock

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with self.lock, self.known_hosts.open("a") as known:
            known.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)


def failed(results: Iterable[HostResult]) -> list[HostResult]:
    """The results that did not succeed (planned writes count as fine)."""
    return [result for result in results if not result.ok]


def _raise_unless_ok(result: HostResult, what: str) -> None:
    if not result.ok:
        raise RemoteError(f"{result.host}: cannot {what}: {result.error}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
