"""The `gridengine` webservice backend: `qsub`, `qdel` and `qstat -xml`, each with a timeout.

The job is submitted as the original webservice submitted it: `qsub -e ~/error.log -o
~/error.log -i /dev/null -q <queue> -l h_vmem=<memory> -b y -N <type>-<tool> <runner> -- <server>`.
The programs are found on PATH (tests put recording stubs there).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from toolforgectl.core import qstat
from toolforgectl.core.errors import WebserviceError
from toolforgectl.core.jobs import Job, JobSpec, by_name

QSTAT_ALL = ("qstat", "-u", "*", "-xml")


class GridEngine:
    """Submits, deletes and lists webservice jobs on a Grid Engine."""

    def __init__(self, queue: str, memory: str, timeout: float = 30.0) -> None:
        self.queue, self.memory, self.timeout = queue, memory, timeout

    def start(self, spec: JobSpec) -> Job:
        """Submit `spec`; the job as submitted (queued)."""
        log = str(Path(spec.home) / "error.log")
        argv = ["qsub", "-e", log, "-o", log, "-i", "/dev/null", "-q", self.queue]
        argv += ["-l", f"h_vmem={self.memory}", "-b", "y", "-N", spec.name, *spec.argv()]
        answer = self._run(argv, cwd=spec.home)
        # "Your job 1234 ("lighttpd-mytool") has been submitted"
        words = answer.split()
        number = words[2] if len(words) > 2 and words[2].isdigit() else ""
        return Job(number, spec.name, spec.tool, "qw")

    def stop(self, name: str) -> bool:
        """Delete every job called `name`; whether there was one."""
        numbers = [job.number for job in self.jobs() if job.name == name and job.number]
        if numbers:
            self._run(["qdel", *numbers])
        return bool(numbers)

    def jobs(self) -> list[Job]:
        """Every job of every user, from `qstat -u '*' -xml`."""
        return qstat.parse(self._run(list(QSTAT_ALL)))

    def job(self, name: str) -> Job | None:
        """The job called `name` (a running one if there are several), or None."""
        return by_name(self.jobs()).get(name)

    def _run(self, argv: list[str], cwd: str | None = None) -> str:
        try:
            done = subprocess.run(
                argv, cwd=cwd, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise WebserviceError(f"{argv[0]} did not answer within {self.timeout:g}s") from None
        except OSError as exc:
            raise WebserviceError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            reason = (done.stderr.strip() or done.stdout.strip()).splitlines()[:1] or ["no message"]
            raise WebserviceError(f"{argv[0]} failed (exit {done.returncode}): {reason[0]}")
        return done.stdout
