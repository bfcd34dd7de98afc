"""The `local` webservice backend (the lab's "grid"): each job a supervised local process.

A job is its command (webservice-runner and the web server) started in a session of its own, in
the tool's home, output appended to `<home>/error.log` as a grid job's is. Its record, one JSON
file per job in the spool directory, holds its pid and the kernel's start time of that pid, so a
recycled pid is never mistaken for the job. `jobs()` lists the live ones in qstat's shape (state
`r`); a job that died is simply not listed, as a finished grid job leaves qstat. Stopping sends
SIGTERM to the job's whole process group (the runner unregisters its route), then SIGKILL to
whatever is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from toolforgectl.adapters.processes import stop_group
from toolforgectl.core.errors import WebserviceError
from toolforgectl.core.jobs import Job, JobSpec

LOG_NAME = "error.log"


class LocalJobs:
    """Jobs as local process groups, recorded in `spool`."""

    def __init__(self, spool: Path, stop_timeout: float = 10.0) -> None:
        self.spool = spool
        self.stop_timeout = stop_timeout

    def start(self, spec: JobSpec, env: Mapping[str, str] | None = None) -> Job:
        """Start `spec` detached from the caller; WebserviceError if it is running already."""
        if (running := self._live(spec.name)) is not None:
            raise WebserviceError(f"job {spec.name} is running already (pid {running.number})")
        self.spool.mkdir(parents=True, exist_ok=True)
        try:
            with (Path(spec.home) / LOG_NAME).open("ab") as log:
                child = subprocess.Popen(
                    spec.argv(),
                    cwd=spec.home,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**os.environ, **(env or {})},
                )
        except OSError as exc:
            raise WebserviceError(f"cannot start job {spec.name}: {exc.strerror or exc}") from None
        record = {"pid": child.pid, "started": _start_time(child.pid), "tool": spec.tool, "name": spec.name}
        _write_json(self._record(spec.name), record)
        return Job(str(child.pid), spec.name, spec.tool, "r")

    def stop(self, name: str) -> bool:
        """Stop job `name` and forget it; whether one was running."""
        job = self._live(name)
        if job is not None:
            stop_group(int(job.number), self.stop_timeout)
        with contextlib.suppress(FileNotFoundError):
            self._record(name).unlink()
        return job is not None

    def stop_all(self) -> list[str]:
        """Stop every live job, all at once; the names of those that were running.

        Each job gets SIGTERM at the same moment and up to `stop_timeout` from then: a runner may
        need all of it to unregister (it retries while the proxy's Redis is down), and N jobs
        stopped one after another would take N times that.
        """
        names = [job.name for job in self.jobs()]
        with ThreadPoolExecutor(max_workers=max(len(names), 1), thread_name_prefix="stop") as pool:
            list(pool.map(self.stop, names))
        return names

    def jobs(self) -> list[Job]:
        """Every live job, as qstat would list it."""
        if not self.spool.is_dir():
            return []
        found = (self._live(path.stem) for path in sorted(self.spool.glob("*.json")))
        return [job for job in found if job is not None]

    def _record(self, name: str) -> Path:
        return self.spool / f"{name}.json"

    def _live(self, name: str) -> Job | None:
        try:
            record = json.loads(self._record(name).read_text(encoding="utf-8"))
            pid, started, tool = int(record["pid"]), record["started"], str(record["tool"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no record, or one we cannot read: no live job we know of
        if started is None or _start_time(pid) != started:
            return None
        return Job(str(pid), name, tool, "r")


def _start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), or None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _write_json(path: Path, data: Mapping[str, object]) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temp, path)
