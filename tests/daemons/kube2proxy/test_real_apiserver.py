"""kube2proxy against a real kube-apiserver 1.20 + etcd (the slow tier: `make slow`)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from tests.conftest import RedisServer, run_cli, wait_until
from tests.support.kube2proxy import Daemon, launcher
from tests.support.kube_cluster import Cluster
from toolforgectl.adapters.routestore import RouteStore

pytestmark = [
    pytest.mark.slow,
    # The apiserver's certificate is self-signed and the kubeconfig says so; the warning is noise.
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

LABELS = {"tools.wmflabs.org/webservice": "true"}


@pytest.fixture(scope="module")
def kube(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> client.CoreV1Api:
    path = cluster.write_kubeconfig(tmp_path_factory.mktemp("kubeconfig") / "admin.json")
    return client.CoreV1Api(config.new_client_from_config(config_file=str(path)))


@pytest.fixture
def launch(tmp_path: Path, cluster: Cluster, redis_server: RedisServer) -> Iterator[Any]:
    """Start kube2proxy with extra kube2proxy settings; every daemon started is stopped after."""
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    with launcher(tmp_path, redis_server.url, kubeconfig) as start:
        yield start


def create(kube: client.CoreV1Api, tool: str, name: str | None = None, **spec: Any) -> client.V1Service:
    """Namespace tool-<tool> (if new) and a labelled Service in it (named after the tool)."""
    namespace = f"tool-{tool}"
    try:
        kube.create_namespace({"metadata": {"name": namespace}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    body = {
        "metadata": {"name": name or tool, "labels": spec.pop("labels", LABELS)},
        "spec": {"ports": [{"name": "http", "port": 8000}], **spec},
    }
    return kube.create_namespaced_service(namespace, body)


def delete(kube: client.CoreV1Api, tool: str, name: str | None = None) -> None:
    kube.delete_namespaced_service(name or tool, f"tool-{tool}")


def backend(svc: client.V1Service, port: int = 8000) -> str:
    return f"http://{svc.spec.cluster_ip}:{port}"


def test_a_created_service_is_routed_within_a_second_and_deleting_it_removes_the_route(
    launch: Any, kube: client.CoreV1Api, store: RouteStore, redis_server: RedisServer
) -> None:
    daemon = launch()
    wait_until(daemon.listed, "the first list")
    svc = create(kube, "rone")
    wait_until(lambda: store.routes("rone"), "the route", timeout=1.0)  # the promise
    assert store.routes("rone") == {".*": backend(svc)}
    # clusterIPs come from 127.96.0.0/16, so the TCP probe of `routes show` stays on loopback.
    shown = run_cli("--redis", redis_server.url, "routes", "show", "rone", "--json")
    assert shown.code == 0, shown.stderr
    assert [r["backend"] for r in json.loads(shown.stdout)["data"]["routes"]] == [backend(svc)]
    current = kube.read_namespaced_service("rone", "tool-rone")
    current.spec.ports[0].port = 8080
    kube.replace_namespaced_service("rone", "tool-rone", current)
    wait_until(lambda: store.routes("rone") == {".*": backend(svc, 8080)}, "the port change")
    delete(kube, "rone")
    wait_until(lambda: not store.routes("rone"), "the route removed")
    assert "tool-rone/rone/.*" not in store.k8s_members()


def test_deletions_while_the_daemon_was_down_are_cleaned_up_on_start(
    launch: Any, kube: client.CoreV1Api, store: RouteStore
) -> None:
    kept, gone = create(kube, "rkeep"), create(kube, "rgone")
    daemon = launch()
    wait_until(lambda: store.routes("rgone") == {".*": backend(gone)}, "the first sync")
    assert daemon.stop() == 0
    delete(kube, "rgone")
    added = create(kube, "radded")
    launch()
    wait_until(lambda: store.routes("radded") == {".*": backend(added)}, "the Service added while down")
    wait_until(lambda: not store.routes("rgone"), "the Service deleted while down")
    assert store.routes("rkeep") == {".*": backend(kept)}
    for tool in ("rkeep", "radded"):
        delete(kube, tool)


def test_410_after_compaction_relists_and_removes_a_deletion_made_in_the_gap(
    launch: Any, kube: client.CoreV1Api, store: RouteStore, cluster: Cluster
) -> None:
    create(kube, "rstay")
    create(kube, "rgap")
    others = cluster.open_watches("services")  # the apiserver's own informer watches Services too
    daemon = launch(watch_timeout=2)
    wait_until(lambda: store.routes("rgap"), "the first sync")
    wait_until(lambda: cluster.open_watches("services") > others, "the daemon's watch")
    os.kill(daemon.popen.pid, signal.SIGSTOP)  # a daemon too slow to see what happens next
    try:
        # Once its watch has timed out on the server, nothing more is sent to it: what happens
        # next it can only learn by watching again from its old version, which compaction makes 410.
        wait_until(lambda: cluster.open_watches("services") <= others, "its watch to time out on the server")
        delete(kube, "rgap")
        create(kube, "rnew")
        cluster.compact()  # the version the daemon will resume from is history now
    finally:
        os.kill(daemon.popen.pid, signal.SIGCONT)
    wait_until(lambda: daemon.metric("kube2proxy_relists_total", reason="gone") >= 1, "a relist on 410")
    wait_until(lambda: not store.routes("rgap"), "the gap deletion removed")
    wait_until(lambda: store.routes("rnew"), "the gap addition written")
    assert store.routes("rstay")
    for tool in ("rstay", "rnew"):
        delete(kube, tool)


def test_hostile_services_are_ignored_with_a_log_line(
    launch: Any, kube: client.CoreV1Api, store: RouteStore
) -> None:
    victim = create(kube, "rvictim")
    create(kube, "revil", name="rvictim")
    create(kube, "rports", ports=[{"name": "a", "port": 1}, {"name": "b", "port": 2}])
    create(kube, "rheadless", clusterIP="None")
    daemon = launch()
    # The relist counter goes up as soon as the list is read, before routes are written.
    wait_until(lambda: store.routes("rvictim"), "the first sync")
    log = daemon.log_text()
    assert store.routes("rvictim") == {".*": backend(victim)}
    assert store.routes("revil") == {} and store.routes("rports") == {} and store.routes("rheadless") == {}
    assert "ignoring Service tool-revil/rvictim: its name is not its tool's" in log
    assert "ignoring Service tool-rports/rports: no port named 'http'" in log
    assert "ignoring Service tool-rheadless/rheadless: it has no clusterIP" in log
    for tool, name in (("rvictim", None), ("revil", "rvictim"), ("rports", None), ("rheadless", None)):
        delete(kube, tool, name)


def test_an_apiserver_restart_breaks_the_stream_and_kube2proxy_recovers_without_rewrites(
    launch: Any, kube: client.CoreV1Api, store: RouteStore, cluster: Cluster
) -> None:
    create(kube, "rsteady")
    daemon = launch()
    wait_until(lambda: store.routes("rsteady"), "the first sync")
    audit = len(store.audit("rsteady"))
    cluster.stop_apiserver()
    cluster.start_apiserver()
    wait_until(lambda: _relists(daemon) >= 2, "a relist after the restart")
    after = create(kube, "rafter")
    wait_until(lambda: store.routes("rafter") == {".*": backend(after)}, "watching again after the restart")
    assert len(store.audit("rsteady")) == audit, "the unchanged route was not written again"
    for tool in ("rsteady", "rafter"):
        delete(kube, tool)


def test_a_standby_proxy_writes_nothing(launch: Any, kube: client.CoreV1Api, store: RouteStore) -> None:
    create(kube, "rstandby")
    daemon = launch(active="proxy-02")
    wait_until(lambda: "standby (proxy-02 is active)" in daemon.log_text(), "the daemon to idle")
    daemon.wait_for_checks(2)  # a wrongly active daemon would have listed and written in between
    assert store.routes("rstandby") == {}
    delete(kube, "rstandby")


def _relists(daemon: Daemon) -> float:
    samples = daemon.metrics()
    return sum(v for (name, _), v in samples.items() if name == "kube2proxy_relists_total")
