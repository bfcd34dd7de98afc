"""The kubernetes backend of `webservice`: a Deployment and a Service in the tool's namespace.

The Deployment runs `replicas` pods of the type's command, each with the cpu and memory limits
the tool asked for (core/kubesize.py: the request is half the limit); the Service, named after
the tool, labelled for kube2proxy and with its port named `http`, is what kube2proxy routes. A
start over a running Deployment replaces it in place: a new `toolforge.org/restartedAt`
annotation rolls the pods, and the Service keeps its clusterIP, so the route never goes away.
`logs` reads the tail of each pod's log through the API.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from toolforgectl.core import kubesize
from toolforgectl.core.config import Webservice
from toolforgectl.core.errors import NotFoundError
from toolforgectl.core.jobs import Job, JobSpec, job_name
from toolforgectl.core.kubesize import Size

RESTARTED_AT = "toolforge.org/restartedAt"
TYPE_LABEL = "toolforge.org/webservice-type"
CONTAINER = "webservice"
SIZE_KEYS = ("replicas", "cpu", "memory")  # the manifest's keys, as the original named them


def size(settings: Webservice, given: Mapping[str, Any]) -> Size:
    """The size to run: each of `SIZE_KEYS` as `given` (the flags over the manifest's), else the
    configured default; checked against the configured maxima."""
    defaults: dict[str, Any] = {"replicas": 1, "cpu": settings.kube_cpu, "memory": settings.kube_memory}
    wanted = Size(**{key: defaults[key] if given.get(key) is None else given[key] for key in SIZE_KEYS})
    maxima = Size(settings.kube_max_replicas, settings.kube_max_cpu, settings.kube_max_memory)
    return kubesize.checked(wanted, maxima)


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

    def selector(self, tool: str) -> str:
        """The labels of the tool's Deployment and of its pods."""
        return f"{self.settings.kube_label}=true,name={tool}"

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
        for item in self.api.deployments(self.namespace(tool), self.selector(tool)):
            labels = (item.get("metadata") or {}).get("labels") or {}
            web = str(labels.get(TYPE_LABEL, ""))
            ready = int((item.get("status") or {}).get("readyReplicas") or 0)
            return Job(tool, job_name(web, tool), tool, "r" if ready else "qw")
        return None

    def logs(self, tool: str, lines: int) -> list[str]:
        """The last `lines` lines of each pod's log; each line led by its pod's name when there
        are several pods. NotFoundError when the tool has no pod."""
        namespace = self.namespace(tool)
        pods = sorted(self.api.pods(namespace, self.selector(tool)))
        if not pods:
            raise NotFoundError(
                f"{tool}'s webservice has no pod in namespace {namespace}: `webservice status` says why"
            )
        found: list[str] = []
        for pod in pods:
            text = self.api.pod_log(namespace, pod, CONTAINER, lines)
            got = text.splitlines() if text is not None else ["(no log yet: its container has not started)"]
            found += [f"{pod}: {line}" for line in got] if len(pods) > 1 or text is None else got
        return found


def kube_objects(settings: Webservice, spec: JobSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment and the Service of `spec` (the Service named after the tool, for kube2proxy)."""
    port = settings.kube_port
    labels = {settings.kube_label: "true", "name": spec.tool, TYPE_LABEL: spec.web}
    wanted = spec.size or size(settings, {})
    command = [part.replace("{port}", str(port)) for part in spec.command]
    container = {
        "name": CONTAINER,
        "image": settings.kube_image,
        "command": command,
        "workingDir": spec.home,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": wanted.resources(),
    }
    template = {
        "metadata": {"labels": labels, "annotations": {RESTARTED_AT: f"{time.time():.6f}"}},
        "spec": {"containers": [container]},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.tool, "labels": labels},
        "spec": {
            "replicas": wanted.replicas,
            "selector": {"matchLabels": {"name": spec.tool}},
            "template": template,
        },
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
