"""What `webservice start|stop|restart|status|logs` does for one tool, whatever the backend.

The manifest says what the tool wants; the backend runs it. `start` refuses a job that runs
already, starts it and records it in the manifest; `stop` stops it and removes the run keys;
`restart` stops, waits until the old job is gone (a grid job lingers in `dr`), then starts, with
the type, backend and extra arguments (and on Kubernetes the replicas, cpu and memory) of the
manifest unless told otherwise. On Kubernetes a restart replaces the Deployment in place (a
rollout), so the route never goes away; workflows/kubewebservice.py is that backend.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from toolforgectl.adapters.gridengine import GridEngine
from toolforgectl.adapters.localjobs import LOG_NAME, LocalJobs
from toolforgectl.core import manifest, validate
from toolforgectl.core.config import Webservice
from toolforgectl.core.errors import NotFoundError, UsageError, WebserviceError
from toolforgectl.core.jobs import Job, JobSpec, by_name, job_name
from toolforgectl.core.kubesize import Size
from toolforgectl.core.manifest import Manifest
from toolforgectl.core.waiting import wait_until
from toolforgectl.workflows.kubewebservice import SIZE_KEYS, KubeBackend
from toolforgectl.workflows.kubewebservice import size as kube_size

ACTIONS = ("start", "stop", "restart", "status", "logs")
TOKEN_FILE = ".proxylistener-token"


@dataclass(frozen=True)
class Tool:
    """A tool as the webservice sees it: its name, its home, and who owns that home."""

    name: str
    home: Path
    uid: int
    gid: int

    @property
    def manifest_path(self) -> Path:
        """Where its service.manifest lives."""
        return self.home / manifest.FILE_NAME


def tool(settings: Webservice, name: str) -> Tool:
    """Tool `name`, whose home must exist and be a directory (not a symlink to someone else's)."""
    validate.tool_name(name)
    home = Path(settings.home.replace("{tool}", name))
    try:
        info = os.lstat(home)
    except FileNotFoundError:
        raise NotFoundError(f"tool {name} has no home at {home}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise WebserviceError(f"{home}: the tool's home is not a directory (a symlink is refused)")
    return Tool(name, home, info.st_uid, info.st_gid)


def read_manifest(settings: Webservice, found: Tool) -> Manifest:
    """The tool's manifest (an empty one when it has none); ManifestError when it cannot be trusted."""
    return manifest.read(found.manifest_path, found.uid, settings.max_manifest_bytes) or Manifest()


class Backend(Protocol):
    """Where webservices run: the local supervisor, Grid Engine or Kubernetes."""

    replaces_in_place: bool  # a restart is a start over the running job (Kubernetes rollout)

    def start(self, spec: JobSpec) -> Job:
        """Start the job of `spec`."""

    def stop(self, tool: str, name: str) -> bool:
        """Stop `tool`'s job `name`; whether there was one."""

    def job(self, tool: str, name: str) -> Job | None:
        """`tool`'s job `name`, or None."""


class Lister(Protocol):
    """A backend that lists every tool's jobs at once, as qstat does (what the monitor reads)."""

    def jobs(self) -> list[Job]:
        """Every job of every tool."""


class LocalBackend:
    """The local supervisor behind the Backend interface."""

    replaces_in_place = False

    def __init__(self, settings: Webservice) -> None:
        self.local = LocalJobs(Path(settings.local_spool), settings.stop_timeout)

    def start(self, spec: JobSpec) -> Job:
        """Start `spec` as a local process group."""
        return self.local.start(spec)

    def stop(self, tool: str, name: str) -> bool:
        """Stop the local job `name`."""
        return self.local.stop(name)

    def job(self, tool: str, name: str) -> Job | None:
        """The live local job `name`."""
        return by_name(self.local.jobs()).get(name)

    def jobs(self) -> list[Job]:
        """Every live local job."""
        return self.local.jobs()


class GridBackend:
    """Grid Engine behind the Backend interface."""

    replaces_in_place = False

    def __init__(self, settings: Webservice) -> None:
        self.grid = GridEngine(settings.gridengine_queue, settings.gridengine_memory, settings.grid_timeout)

    def start(self, spec: JobSpec) -> Job:
        """qsub the job."""
        return self.grid.start(spec)

    def stop(self, tool: str, name: str) -> bool:
        """qdel the job."""
        return self.grid.stop(name)

    def job(self, tool: str, name: str) -> Job | None:
        """The job as qstat lists it."""
        return self.grid.job(name)

    def jobs(self) -> list[Job]:
        """Every job qstat lists."""
        return self.grid.jobs()


def backend(settings: Webservice, name: str) -> Backend:
    """The backend called `name`."""
    if name == "local":
        return LocalBackend(settings)
    if name == "gridengine":
        return GridBackend(settings)
    if name == "kubernetes":
        return KubeBackend(settings)
    raise UsageError(f"unknown backend {name!r} (local, gridengine or kubernetes)")


def lister(settings: Webservice, name: str) -> Lister:
    """The backend called `name`, for listing every job (local or gridengine)."""
    if name == "local":
        return LocalBackend(settings)
    if name == "gridengine":
        return GridBackend(settings)
    raise UsageError(f"the monitor watches local or gridengine jobs, not {name!r}")


def spec(settings: Webservice, found: Tool, plan: Plan) -> JobSpec:
    """The job that runs `found`'s webservice as `plan` says."""
    web, extra = plan.web, plan.extra
    if web not in settings.types:
        known = ", ".join(sorted(settings.types))
        raise UsageError(f"unknown webservice type {web!r} (known: {known})")
    filled = [
        part.replace("{home}", str(found.home)).replace("{tool}", found.name) for part in settings.types[web]
    ]
    command = (*filled, *extra)
    if not command:
        raise UsageError(f"type {web} runs the extra arguments as the command: give them after --")
    return JobSpec(found.name, web, str(found.home), command, runner(settings, found), plan.size)


def runner(settings: Webservice, found: Tool) -> tuple[str, ...]:
    """webservice-runner with the tool's token and where to register."""
    beside = Path(sys.executable).parent / "webservice-runner"  # the same install as this program
    program = str(beside) if beside.exists() else (shutil.which("webservice-runner") or "webservice-runner")
    argv = [program, "--token-file", str(found.home / TOKEN_FILE), "--proxy-port", str(settings.proxy_port)]
    argv += ["--active-proxy-file", settings.active_proxy_file]
    return (*argv, *(("--proxy", settings.proxy) if settings.proxy else ()))


@dataclass(frozen=True)
class Request:
    """What the caller asked for: the type, backend and extra arguments, and on Kubernetes the
    replicas, cpu and memory (None: the manifest's)."""

    web: str | None = None
    backend: str | None = None
    extra: tuple[str, ...] = ()
    replicas: int | None = None
    cpu: str | None = None
    memory: str | None = None


@dataclass(frozen=True)
class Plan:
    """What will run: the request completed from the manifest and the defaults, and checked."""

    web: str
    backend: str
    extra: tuple[str, ...]
    size: Size | None = None  # kubernetes only
    recorded: dict[str, Any] = field(default_factory=dict)  # the size keys the manifest keeps

    def started(self, current: Manifest) -> Manifest:
        """`current` wanting what this plan runs."""
        return current.started(self.web, self.backend, self.extra, **self.recorded)


def start(settings: Webservice, found: Tool, asked: Request) -> Job:
    """Start the tool's webservice and record it in the manifest."""
    current = read_manifest(settings, found)
    plan = _resolve(settings, current, asked)
    if current.web and current.backend != plan.backend:
        raise WebserviceError(
            f"{found.name}'s webservice is on {current.backend}; stop it before starting it on {plan.backend}"
        )
    chosen = backend(settings, plan.backend)
    job_spec = spec(settings, found, plan)
    running = chosen.job(found.name, job_spec.name)
    if running is not None and running.running:
        raise WebserviceError(f"{found.name}'s webservice is running already (job {running.number})")
    job = chosen.start(job_spec)
    _write(found, plan.started(current))
    return job


def stop(settings: Webservice, found: Tool) -> bool:
    """Stop the tool's webservice and clear the run keys; whether a job was running."""
    current = read_manifest(settings, found)
    stopped = False
    if current.web:
        stopped = backend(settings, current.backend).stop(found.name, job_name(current.web, found.name))
    _write(found, current.stopped())
    return stopped


def restart(settings: Webservice, found: Tool, asked: Request) -> Job:
    """Stop, wait for the old job to go, start (Kubernetes: roll out in place)."""
    current = read_manifest(settings, found)
    plan = _resolve(settings, current, asked)
    chosen = backend(settings, plan.backend)
    job_spec = spec(settings, found, plan)
    if current.web and (current.backend != plan.backend or current.web != plan.web):
        backend(settings, current.backend).stop(found.name, job_name(current.web, found.name))
    if not chosen.replaces_in_place:
        chosen.stop(found.name, job_spec.name)
        wait_until(
            lambda: chosen.job(found.name, job_spec.name) is None,
            f"{found.name}'s old job {job_spec.name} to go",
            settings.stop_timeout,
            0.2,
            WebserviceError,
        )
    job = chosen.start(job_spec)
    _write(found, plan.started(current))
    return job


def status(settings: Webservice, found: Tool) -> dict[str, Any]:
    """What the manifest wants and what runs, as JSON data."""
    current = read_manifest(settings, found)
    job = None
    if current.web:
        job = backend(settings, current.backend).job(found.name, job_name(current.web, found.name))
    return {
        "tool": found.name,
        "manifest": dict(current.data),
        "wanted": current.web is not None,
        "type": current.web,
        "backend": current.backend if current.web else None,
        "job": job.as_dict() if job else None,
        "running": bool(job and job.running),
    }


def logs(settings: Webservice, found: Tool, lines: int) -> list[str]:
    """The last `lines` lines of the webservice's log: `<home>/error.log`, as on the grid, or on
    Kubernetes each pod's (NotFoundError when there is no pod)."""
    current = read_manifest(settings, found)
    if current.web and current.backend == "kubernetes":
        return KubeBackend(settings).logs(found.name, lines)
    try:
        with (found.home / LOG_NAME).open(encoding="utf-8", errors="replace") as file:
            return [line.rstrip("\n") for line in deque(file, maxlen=lines)]
    except FileNotFoundError:
        return []


def _resolve(settings: Webservice, current: Manifest, asked: Request) -> Plan:
    web = asked.web or current.web
    if not web:
        raise UsageError("give the webservice type (the manifest names none): webservice TYPE start")
    where = asked.backend or (current.backend if current.web else settings.default_backend)
    same = web == current.web
    extra = asked.extra or (current.extra_args if same else ())
    given = {key: getattr(asked, key) for key in SIZE_KEYS if getattr(asked, key) is not None}
    if where != "kubernetes":
        if given:
            raise UsageError(f"--replicas, --cpu and --mem are for the kubernetes backend, not {where}")
        return Plan(web, where, extra)
    if current.web and current.backend == "kubernetes":  # what the tool asked for before still holds
        given = {**{key: current.data[key] for key in SIZE_KEYS if key in current.data}, **given}
    return Plan(web, where, extra, kube_size(settings, given), given)


def _write(found: Tool, wanted: Manifest) -> None:
    manifest.write(found.manifest_path, wanted, owner=(found.uid, found.gid))
