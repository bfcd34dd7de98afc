"""What `webservice start|stop|restart|status|logs` does for one tool, whatever the backend.

The manifest says what the tool wants; the backend runs it. `start` refuses a job that runs
already, starts it and records it in the manifest; `stop` stops it and removes the run keys;
`restart` stops, waits until the old job is gone (a grid job lingers in `dr`), then starts, with
the type, backend and extra arguments of the manifest unless told otherwise. On Kubernetes a
restart replaces the Deployment in place (a rollout), so the route never goes away.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from toolforgectl.adapters.gridengine import GridEngine
from toolforgectl.adapters.localjobs import LOG_NAME, LocalJobs
from toolforgectl.core import manifest, validate
from toolforgectl.core.config import Webservice
from toolforgectl.core.errors import NotFoundError, UsageError, WebserviceError
from toolforgectl.core.jobs import Job, JobSpec, by_name, job_name
from toolforgectl.core.manifest import Manifest
from toolforgectl.core.waiting import wait_until

ACTIONS = ("start", "stop", "restart", "status", "logs")
TOKEN_FILE = ".proxylistener-token"
RESTARTED_AT = "toolforge.org/restartedAt"


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


class KubeBackend:
    """A Deployment and a Service labelled for kube2proxy, in the tool's namespace."""

    replaces_in_place = True

    def __init__(self, settings: Webservice) -> None:
        from toolforgectl.adapters.kube import WebserviceApi

        self.settings = settings
        self.api = WebserviceApi.connect(settings.kubeconfig)

    def namespace(self, tool: str) -> str:
        """The tool's namespace."""
        return self.settings.kube_namespace.replace("{tool}", tool)

    def start(self, spec: JobSpec) -> Job:
        """Create (or roll out again) the Deployment and the Service."""
        deployment, service = kube_objects(self.settings, spec)
        self.api.apply(self.namespace(spec.tool), deployment, service)
        return Job(spec.tool, spec.name, spec.tool, "qw")

    def stop(self, tool: str, name: str) -> bool:
        """Delete both objects."""
        return self.api.delete(self.namespace(tool), tool)

    def job(self, tool: str, name: str) -> Job | None:
        """The Deployment as a job: `r` once a replica is ready, `qw` before."""
        selector = f"{self.settings.kube_label}=true,name={tool}"
        for item in self.api.deployments(self.namespace(tool), selector):
            labels = (item.get("metadata") or {}).get("labels") or {}
            web = str(labels.get("toolforge.org/webservice-type", ""))
            ready = int((item.get("status") or {}).get("readyReplicas") or 0)
            return Job(tool, job_name(web, tool), tool, "r" if ready else "qw")
        return None


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


def spec(settings: Webservice, found: Tool, web: str, extra: tuple[str, ...]) -> JobSpec:
    """The job that runs `found`'s webservice of type `web` with `extra` arguments."""
    if web not in settings.types:
        known = ", ".join(sorted(settings.types))
        raise UsageError(f"unknown webservice type {web!r} (known: {known})")
    filled = [
        part.replace("{home}", str(found.home)).replace("{tool}", found.name) for part in settings.types[web]
    ]
    command = (*filled, *extra)
    if not command:
        raise UsageError(f"type {web} runs the extra arguments as the command: give them after --")
    return JobSpec(found.name, web, str(found.home), command, runner(settings, found))


def runner(settings: Webservice, found: Tool) -> tuple[str, ...]:
    """webservice-runner with the tool's token and where to register."""
    beside = Path(sys.executable).parent / "webservice-runner"  # the same install as this program
    program = str(beside) if beside.exists() else (shutil.which("webservice-runner") or "webservice-runner")
    argv = [program, "--token-file", str(found.home / TOKEN_FILE), "--proxy-port", str(settings.proxy_port)]
    argv += ["--active-proxy-file", settings.active_proxy_file]
    return (*argv, *(("--proxy", settings.proxy) if settings.proxy else ()))


def kube_objects(settings: Webservice, spec: JobSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment and the Service of `spec` (the Service named after the tool, for kube2proxy)."""
    port = settings.kube_port
    labels = {settings.kube_label: "true", "name": spec.tool, "toolforge.org/webservice-type": spec.web}
    command = [part.replace("{port}", str(port)) for part in spec.command]
    container = {
        "name": "webservice",
        "image": settings.kube_image,
        "command": command,
        "workingDir": spec.home,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
    }
    template = {
        "metadata": {"labels": labels, "annotations": {RESTARTED_AT: f"{time.time():.0f}"}},
        "spec": {"containers": [container]},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.tool, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"name": spec.tool}}, "template": template},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.tool, "labels": labels},
        "spec": {
            "selector": {"name": spec.tool},
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }
    return deployment, service


@dataclass(frozen=True)
class Request:
    """What the caller asked for: the type, backend and extra arguments (None: the manifest's)."""

    web: str | None = None
    backend: str | None = None
    extra: tuple[str, ...] = ()


def start(settings: Webservice, found: Tool, asked: Request) -> Job:
    """Start the tool's webservice and record it in the manifest."""
    current = read_manifest(settings, found)
    web, where, extra = _resolve(settings, current, asked)
    if current.web and current.backend != where:
        raise WebserviceError(
            f"{found.name}'s webservice is on {current.backend}; stop it before starting it on {where}"
        )
    chosen = backend(settings, where)
    job_spec = spec(settings, found, web, extra)
    running = chosen.job(found.name, job_spec.name)
    if running is not None and running.running:
        raise WebserviceError(f"{found.name}'s webservice is running already (job {running.number})")
    job = chosen.start(job_spec)
    _write(found, current.started(web, where, extra))
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
    web, where, extra = _resolve(settings, current, asked)
    chosen = backend(settings, where)
    job_spec = spec(settings, found, web, extra)
    if current.web and (current.backend != where or current.web != web):
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
    _write(found, current.started(web, where, extra))
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
    """The last `lines` lines of the webservice's log (`<home>/error.log`, as on the grid)."""
    current = read_manifest(settings, found)
    if current.web and current.backend == "kubernetes":
        namespace = settings.kube_namespace.replace("{tool}", found.name)
        raise WebserviceError(
            f"a kubernetes webservice logs to its pod: kubectl logs -n {namespace} deploy/{found.name}"
        )
    try:
        with (found.home / LOG_NAME).open(encoding="utf-8", errors="replace") as file:
            return [line.rstrip("\n") for line in deque(file, maxlen=lines)]
    except FileNotFoundError:
        return []


def _resolve(settings: Webservice, current: Manifest, asked: Request) -> tuple[str, str, tuple[str, ...]]:
    web = asked.web or current.web
    if not web:
        raise UsageError("give the webservice type (the manifest names none): webservice TYPE start")
    where = asked.backend or (current.backend if current.web else settings.default_backend)
    same = web == current.web
    extra = asked.extra or (current.extra_args if same else ())
    return web, where, extra


def _write(found: Tool, wanted: Manifest) -> None:
    manifest.write(found.manifest_path, wanted, owner=(found.uid, found.gid))
