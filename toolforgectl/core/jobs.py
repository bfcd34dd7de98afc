"""Webservice jobs as every backend lists them: the shape `qstat -xml` gives, and what "running" means.

A job is named `<type>-<tool>` (the original's grid convention, which webservicemonitor looks up).
Its state is Grid Engine's letter code. The original counted a job as running when its state held
any of `r`, `s`, `w`, `h`, so an errored job (`Eqw`) or one being deleted (`dr`) counted as
running and was never restarted. Here a state holding `E` (error) or `d` (deleting) is not
running; otherwise `r` (running), `t` (transferring), `R` (restarted), `s`/`S`/`T` (suspended),
`w` (waiting in the queue) and `h` (held) are, as before: restarting a queued or suspended job
would not make it serve sooner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from toolforgectl.core.kubesize import Size

NOT_RUNNING = frozenset("Ed")
RUNNING = frozenset("rtRsSTwh")


def is_running(state: str) -> bool:
    """Whether a job in Grid Engine state `state` counts as running (see the module docstring)."""
    letters = set(state)
    return not letters & NOT_RUNNING and bool(letters & RUNNING)


def job_name(web: str, tool: str) -> str:
    """The job name of `tool`'s webservice of type `web`: `<type>-<tool>`."""
    return f"{web}-{tool}"


@dataclass(frozen=True)
class Job:
    """One job as qstat lists it: number, name, owner and state."""

    number: str
    name: str
    owner: str
    state: str

    @property
    def running(self) -> bool:
        """Whether the job counts as running (errors and deletions do not)."""
        return is_running(self.state)

    def as_dict(self) -> dict[str, object]:
        """The job as JSON data."""
        return {"number": self.number, "name": self.name, "owner": self.owner, "state": self.state}


def by_name(jobs: Iterable[Job]) -> dict[str, Job]:
    """Jobs by name; of several with one name, a running one wins (a restart's old job may linger)."""
    found: dict[str, Job] = {}
    for job in jobs:
        if job.name not in found or (job.running and not found[job.name].running):
            found[job.name] = job
    return found


@dataclass(frozen=True)
class JobSpec:
    """What a backend needs to start one webservice: the tool, its job name, home and command."""

    tool: str
    web: str
    home: str
    command: tuple[str, ...]  # the web server, with `{port}` where the port goes
    runner: tuple[str, ...]  # webservice-runner and its options, to which `--` and `command` are added
    size: Size | None = None  # kubernetes only: replicas, cpu and memory (checked already)

    @property
    def name(self) -> str:
        """The job name, `<type>-<tool>`."""
        return job_name(self.web, self.tool)

    def argv(self) -> list[str]:
        """The whole job command: the runner, then the server after `--`."""
        return [*self.runner, "--", *self.command]
