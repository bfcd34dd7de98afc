"""One look at every tool's webservice: its manifest, its job, its route; and what the monitor does.

`survey` reads every `service.manifest` (a bad one becomes a `skip` verdict with the reason, never
an exception), lists the jobs of each backend the manifests name (once per backend: one `qstat`
for 3,000 tools), and fetches the active proxy's `/list` (with a timeout). `decide` then says, per
tool: `none` (no webservice wanted), `ok`, `restart` (its job is not running, or it has no
route), `throttled` (it would be restarted but had too many restarts lately), `skip` (a manifest
we cannot trust, or a backend the monitor does not watch) or `unknown` (its backend could not
be asked). When `/list` cannot be fetched, a missing route is not evidence of anything: only
tools whose job is not running are restarted, so a proxy outage never causes a restart storm.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolforgectl.core import manifest
from toolforgectl.core.config import Fleet, Webservice
from toolforgectl.core.errors import ToolforgectlError, WebserviceError
from toolforgectl.core.jobs import Job, by_name, job_name
from toolforgectl.core.manifest import Manifest
from toolforgectl.workflows import webservice
from toolforgectl.workflows.restarthistory import RestartHistory

WATCHED = ("gridengine", "local")  # Kubernetes restarts its own pods
LIST_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    """What the monitor makes of one tool."""

    tool: str
    action: str  # none | ok | restart | throttled | skip | unknown
    reason: str
    web: str | None = None
    backend: str | None = None
    job: Job | None = None
    routed: bool | None = None  # None: /list could not be fetched

    def as_dict(self) -> dict[str, Any]:
        """The verdict as JSON data."""
        return {
            "tool": self.tool,
            "action": self.action,
            "reason": self.reason,
            "type": self.web,
            "backend": self.backend,
            "job": self.job.as_dict() if self.job else None,
            "routed": self.routed,
        }


@dataclass(frozen=True)
class Found:
    """One tool's manifest as read: the manifest, or why it cannot be used."""

    tool: str
    manifest: Manifest | None
    problem: str = ""


def manifests(settings: Webservice) -> Iterator[Found]:
    """Every tool home's manifest, each read defensively (see core/manifest.py)."""
    parent = Path(settings.home.partition("{tool}")[0])
    try:
        names = sorted(entry.name for entry in parent.iterdir())
    except OSError as exc:
        raise WebserviceError(f"cannot list the tool homes in {parent}: {exc.strerror}") from None
    for name in names:
        if not os.path.lexists(Path(settings.home.replace("{tool}", name)) / manifest.FILE_NAME):
            continue  # no manifest: nothing wanted
        try:
            tool = webservice.tool(settings, name)
            found = manifest.read(tool.manifest_path, tool.uid, settings.max_manifest_bytes)
        except ToolforgectlError as exc:
            yield Found(name, None, str(exc))
            continue
        if found is not None:
            yield Found(name, found)


def list_url(fleet: Fleet) -> str:
    """The active proxy's `/list` (the setting, else its internal address and port)."""
    settings = fleet.webservice
    if settings.list_url:
        return settings.list_url
    host = fleet.dataplane.internal_address or fleet.proxy().address
    return f"http://{host}:{fleet.dataplane.internal_port}/list"


def fetch_list(url: str, timeout: float) -> set[str]:
    """The tools `/list` names; WebserviceError when it cannot be fetched within `timeout`."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as page:
            body = page.read(LIST_MAX_BYTES + 1)
        data = json.loads(body)
    except (OSError, ValueError) as exc:
        raise WebserviceError(f"cannot fetch {url}: {exc}") from None
    if not isinstance(data, dict):
        raise WebserviceError(f"{url} answered JSON that is not an object")
    return set(data)


@dataclass
class Survey:
    """Everything one pass looked at."""

    found: list[Found]
    jobs: dict[str, dict[str, Job] | str]  # per backend: jobs by name, or why they are unknown
    routed: set[str] | None
    list_error: str = ""


def survey(
    fleet: Fleet,
    listers: Callable[[str], webservice.Lister] | None = None,
) -> Survey:
    """Read every manifest, each watched backend's jobs once, and `/list`."""
    settings = fleet.webservice
    found = list(manifests(settings))
    wanted = {f.manifest.backend for f in found if f.manifest is not None and f.manifest.web}
    make = listers or (lambda name: webservice.lister(settings, name))
    jobs: dict[str, dict[str, Job] | str] = {}
    for name in sorted(wanted & set(WATCHED)):
        try:
            jobs[name] = by_name(make(name).jobs())
        except ToolforgectlError as exc:
            jobs[name] = str(exc)
    try:
        return Survey(found, jobs, fetch_list(list_url(fleet), settings.list_timeout))
    except WebserviceError as exc:
        return Survey(found, jobs, None, str(exc))


def decide(seen: Survey, history: RestartHistory | None, now: float) -> list[Verdict]:
    """Each tool's verdict (see the module docstring)."""
    return [_verdict(found, seen, history, now) for found in seen.found]


def _verdict(found: Found, seen: Survey, history: RestartHistory | None, now: float) -> Verdict:
    if found.manifest is None:
        return Verdict(found.tool, "skip", found.problem)
    wanted = found.manifest
    if not wanted.web:
        return Verdict(found.tool, "none", "no webservice wanted")
    web, where = wanted.web, wanted.backend
    if where not in WATCHED:
        return Verdict(found.tool, "skip", f"the monitor does not watch {where} webservices", web, where)
    jobs = seen.jobs.get(where, {})
    if isinstance(jobs, str):
        return Verdict(found.tool, "unknown", f"cannot list {where} jobs: {jobs}", web, where)
    job = jobs.get(job_name(web, found.tool))
    routed = None if seen.routed is None else found.tool in seen.routed
    if job is None or not job.running:
        reason = "no job" if job is None else f"job {job.name} is {job.state}, not running"
    elif routed is False:
        reason = "no route in the proxy's /list"
    else:
        return Verdict(
            found.tool, "ok", "running" + (" and routed" if routed else ""), web, where, job, routed
        )
    action = "throttled" if history is not None and history.throttled(found.tool, now) else "restart"
    return Verdict(found.tool, action, reason, web, where, job, routed)
