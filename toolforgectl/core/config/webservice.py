"""The `webservice:` section of the fleet config: where tools live, the backends, and the monitor.

Every key is optional; docs/webservice.md explains each next to what it configures. The same
section serves the `webservice` command (run by a tool) and the `webservicemonitor` daemon.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic.dataclasses import dataclass

from toolforgectl.core import activeproxy, kubesize
from toolforgectl.core.config.schema import (
    SECTION,
    Count,
    Port,
    PortOrOff,
    Seconds,
    Text,
    Texts,
    invalid,
    one_of,
)
from toolforgectl.core.errors import ValidationError

BACKENDS = ("local", "gridengine", "kubernetes")


def _names_a_tool(template: str) -> str:
    if "{tool}" not in template:
        raise invalid("must contain {tool}, where the tool's name goes")
    return template


def _cpu(value: str) -> str:
    return _quantity("cpu", value)


def _memory(value: str) -> str:
    return _quantity("memory", value)


def _quantity(what: str, value: str) -> str:
    try:
        kubesize.quantity(what, value)
    except ValidationError:
        raise invalid(f"must be a Kubernetes quantity such as {kubesize.EXAMPLES[what]}") from None
    return value


def _default_types() -> dict[str, tuple[str, ...]]:
    # `generic`: the extra arguments are the whole command (the original's generic type). `static`
    # serves the tool's public_html. Operators add their own types (lighttpd, uwsgi, ...) here.
    return {
        "generic": (),
        "static": ("python3", "-m", "http.server", "--directory", "{home}/public_html", "{port}"),
    }


@dataclass(frozen=True, config=SECTION)
class Webservice:
    """Settings of `webservice` and `webservicemonitor` (the `webservice:` section)."""

    home: Annotated[Text, AfterValidator(_names_a_tool)] = "/data/project/{tool}"
    project: Text = "tools"  # a tool's Unix user is <project>.<tool>
    default_backend: Annotated[Text, one_of(*BACKENDS)] = "gridengine"
    # Web server command of each type; {port}, {home} and {tool} are filled in, extra args appended.
    types: dict[Text, Texts] = Field(default_factory=_default_types)
    max_manifest_bytes: Count = 65536
    # How the server registers: webservice-runner's --proxy (empty: the active-proxy file).
    proxy: Text = ""
    proxy_port: Port = 8282
    active_proxy_file: Text = activeproxy.DEFAULT_FILE
    # local backend: where its job records live (one JSON file per job).
    local_spool: Text = "/var/lib/toolforgectl/webservice-local"
    # gridengine backend.
    gridengine_queue: Text = "webgrid-generic"
    gridengine_memory: Text = "4G"
    grid_timeout: Seconds = 30.0  # each qsub, qstat or qdel
    stop_timeout: Seconds = 30.0  # restart: how long the old job may take to go
    # kubernetes backend.
    kubeconfig: Text | None = None
    kube_namespace: Annotated[Text, AfterValidator(_names_a_tool)] = "tool-{tool}"
    kube_image: Text = "docker-registry.tools.wmflabs.org/toolforge-python311-sssd-web:latest"
    kube_label: Text = "tools.wmflabs.org/webservice"
    kube_port: Port = 8000
    # Each replica's cpu and memory limit when the tool asks for none (the request is half), and
    # the most a tool may ask for: `webservice --replicas/--cpu/--mem` beyond these is refused.
    kube_cpu: Annotated[Text, AfterValidator(_cpu)] = "500m"
    kube_memory: Annotated[Text, AfterValidator(_memory)] = "512Mi"
    kube_max_replicas: Count = 4
    kube_max_cpu: Annotated[Text, AfterValidator(_cpu)] = "1"
    kube_max_memory: Annotated[Text, AfterValidator(_memory)] = "4Gi"
    # webservicemonitor.
    interval: Seconds = 60.0
    max_restarts: Count = 3
    restart_window: Seconds = 3600.0
    restart_timeout: Seconds = 30.0
    # How the monitor restarts a tool, as the tool; {tool}, {user} and {backend} are filled in.
    restart_command: Texts = (
        "sudo",
        "-n",
        "-i",
        "-u",
        "{user}",
        "webservice",
        "--backend",
        "{backend}",
        "restart",
    )
    list_url: Text = ""  # empty: http://<active proxy address>:<dataplane.internal_port>/list
    list_timeout: Seconds = 10.0
    state_file: Text = "/var/lib/toolforgectl/webservicemonitor.json"
    metrics_address: Text = "127.0.0.1"
    metrics_port: PortOrOff = 9618  # 0 disables the Prometheus endpoint
