"""`webservice --backend kubernetes` against a real kube-apiserver 1.20 + etcd, with kube2proxy routing
what it creates (the slow tier: `make slow`).

The apiserver validates what the fake API takes on trust (the Deployment's selector against its
template, resources requests against limits, a replace's resourceVersion, a Service's clusterIP).
There is no controller-manager and no kubelet: no pods ever run, so a test writes the Deployment's
status itself where the controller would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from tests.conftest import RedisServer, wait_until
from tests.daemons.webservice_site import Site, make_site
from tests.support.kube2proxy import Daemon, launcher
from tests.support.kube_cluster import Cluster
from toolforgectl.adapters.routestore import RouteStore

pytestmark = [
    pytest.mark.slow,
    # The apiserver's certificate is self-signed and the kubeconfig says so; the warning is noise.
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


@pytest.fixture(scope="module")
def api(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    """The admin's client, for what the test itself reads and writes."""
    path = cluster.write_kubeconfig(tmp_path_factory.mktemp("kubeconfig") / "admin.json")
    return config.new_client_from_config(config_file=str(path))


@pytest.fixture
def site(tmp_path: Path, cluster: Cluster) -> Site:
    """Tool homes whose webservices go to the real apiserver."""
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    return make_site(tmp_path, kubeconfig=str(kubeconfig))


@pytest.fixture
def kube2proxy(tmp_path: Path, cluster: Cluster, redis_server: RedisServer) -> Iterator[Daemon]:
    """kube2proxy as a process, watching the apiserver and writing to the test's Redis."""
    directory = tmp_path / "kube2proxy"
    directory.mkdir()
    with launcher(directory, redis_server.url, cluster.write_kubeconfig(directory / "kubeconfig")) as launch:
        daemon = launch()
        wait_until(daemon.listed, "kube2proxy's first list")
        yield daemon


def namespace(api: client.ApiClient, tool: str) -> str:
    """The tool's namespace, created as Toolforge's account tooling would."""
    name = f"tool-{tool}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def read(method: Callable[..., Any], name: str, namespace: str) -> dict[str, Any] | None:
    """An object as the apiserver stores it (raw JSON: no client model in between), or None."""
    try:
        response = method(name, namespace, _preload_content=False)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    found: dict[str, Any] = json.loads(response.data)
    return found


def deployment(api: client.ApiClient, tool: str) -> dict[str, Any] | None:
    return read(client.AppsV1Api(api).read_namespaced_deployment, tool, f"tool-{tool}")


def service(api: client.ApiClient, tool: str) -> dict[str, Any] | None:
    return read(client.CoreV1Api(api).read_namespaced_service, tool, f"tool-{tool}")


def set_ready(api: client.ApiClient, tool: str, ready: int) -> None:
    """What the Deployment controller would write once `ready` pods pass their readiness checks."""
    current = deployment(api, tool)
    assert current is not None
    current["status"] = {"replicas": ready, "readyReplicas": ready, "availableReplicas": ready}
    client.AppsV1Api(api).replace_namespaced_deployment_status(
        tool, f"tool-{tool}", current, _preload_content=False
    )


def manifest(site: Site, tool: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((site.home(tool) / "service.manifest").read_text())
    return data


def test_start_restart_stop_through_the_apiserver_and_kube2proxy_routes_the_tool(
    site: Site, api: client.ApiClient, kube2proxy: Daemon, store: RouteStore
) -> None:
    site.add_tool("kdemo")
    namespace(api, "kdemo")

    started = site.webservice(
        "kdemo", "--backend", "kubernetes", "--replicas", "2", "--cpu", "250m", "--mem", "1Gi",
        "generic", "start", "--", "srv", "--port={port}",
    )  # fmt: skip

    assert started.returncode == 0, started.stderr
    made = deployment(api, "kdemo")
    assert made is not None and made["spec"]["replicas"] == 2
    container = made["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["srv", "--port=8000"]
    assert container["resources"] == {
        "limits": {"cpu": "250m", "memory": "1Gi"},
        "requests": {"cpu": "125m", "memory": "512Mi"},
    }
    svc = service(api, "kdemo")
    assert svc is not None and svc["metadata"]["labels"]["tools.wmflabs.org/webservice"] == "true"
    backend = f"http://{svc['spec']['clusterIP']}:8000"
    wait_until(lambda: store.routes("kdemo") == {".*": backend}, "kube2proxy to route kdemo")
    assert (manifest(site, "kdemo")["replicas"], manifest(site, "kdemo")["memory"]) == (2, "1Gi")

    # Status reads the Deployment: no ready pod yet (nothing runs pods here), then two.
    assert site.status("kdemo")["job"]["state"] == "qw"
    set_ready(api, "kdemo", 2)
    shown = site.webservice("kdemo", "status")
    assert shown.stdout.strip() == "kdemo's webservice of type generic on kubernetes is running"
    assert site.status("kdemo")["job"]["state"] == "r"
    # No pod exists on this cluster: logs says so in one line.
    logs = site.webservice("kdemo", "logs")
    assert logs.returncode == 1 and "kdemo's webservice has no pod in namespace tool-kdemo" in logs.stderr

    writes = len(store.audit("kdemo"))
    restarted = site.webservice("kdemo", "--replicas", "1", "restart")

    assert restarted.returncode == 0, restarted.stderr
    rolled = deployment(api, "kdemo")
    assert rolled is not None and rolled["metadata"]["generation"] == made["metadata"]["generation"] + 1
    assert rolled["spec"]["replicas"] == 1
    annotation = "toolforge.org/restartedAt"
    assert (
        rolled["spec"]["template"]["metadata"]["annotations"][annotation]
        != (made["spec"]["template"]["metadata"]["annotations"][annotation])
    )
    assert rolled["spec"]["template"]["spec"]["containers"][0]["resources"] == container["resources"]
    kept = service(api, "kdemo")
    assert kept is not None and kept["spec"]["clusterIP"] == svc["spec"]["clusterIP"]
    # kube2proxy handles events in order: once a later tool is routed, it has seen the restart.
    site.add_tool("kmarker")
    namespace(api, "kmarker")
    assert site.webservice("kmarker", "--backend", "kubernetes", "static", "start").returncode == 0
    wait_until(lambda: store.routes("kmarker"), "kube2proxy to route the marker")
    assert store.routes("kdemo") == {".*": backend}
    assert len(store.audit("kdemo")) == writes, "the restart neither removed nor rewrote the route"

    stopped = site.webservice("kdemo", "stop")

    assert stopped.returncode == 0, stopped.stderr
    assert deployment(api, "kdemo") is None and service(api, "kdemo") is None
    wait_until(lambda: not store.routes("kdemo"), "kube2proxy to remove kdemo's route")
    assert "web" not in manifest(site, "kdemo")
    assert site.webservice("kdemo", "status").stdout.strip() == "kdemo has no webservice"
    assert site.webservice("kmarker", "stop").returncode == 0


def test_start_without_the_tools_namespace_fails_in_one_line_and_records_nothing(
    site: Site, api: client.ApiClient
) -> None:
    site.add_tool("knons")

    done = site.webservice("knons", "--backend", "kubernetes", "static", "start")

    assert done.returncode == 1
    assert done.stderr.strip() == (
        "webservice: error: namespace tool-knons does not exist: the tool has no Kubernetes account"
    )
    assert not (site.home("knons") / "service.manifest").exists()
