"""`toolforgectl lab up --proxies 2`: two proxies on their own addresses, the standby's Redis
replicating the active one's, route writers that follow the active proxy, and `proxy list`.

The lab is slow to start, so the whole module shares one; each test leaves it as it found it."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run_cli, wait_until
from tests.support.lab import two_proxy_lab
from toolforgectl.adapters.processes import free_port
from toolforgectl.adapters.routestore import RouteStore, wait_caught_up
from toolforgectl.core import tokens
from toolforgectl.lab import kubeapi, kubewire

ACTIVE, STANDBY = "proxy-01", "proxy-02"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One two-proxy lab for the module."""
    with two_proxy_lab(tmp_path_factory.mktemp("fleet") / "lab") as state:
        yield state


def ctl(lab: dict[str, Any], *args: str) -> Any:
    """`toolforgectl --config LAB/fleet.yaml ARGS --json`: (exit code, data)."""
    done = run_cli("--config", lab["config"], *args, "--json")
    return done.code, json.loads(done.stdout)["data"] if done.stdout else done.stderr


def store(lab: dict[str, Any], proxy: str) -> RouteStore:
    return RouteStore.from_url(lab["proxies"][proxy]["redis"])


def caught_up(lab: dict[str, Any]) -> None:
    wait_caught_up(store(lab, ACTIVE), store(lab, STANDBY))


def test_each_proxy_has_its_own_address_and_the_standby_serves_from_its_replica(lab: dict[str, Any]) -> None:
    assert [lab["proxies"][name]["address"] for name in (ACTIVE, STANDBY)] == ["127.0.0.11", "127.0.0.12"]
    assert {p["role"] for p in lab["processes"]} == {
        "redis", "nginx", "proxylistener", "kubeapi", "kube2proxy", "tool", "webservicemonitor",
        "sshd", "dnsmasq", "cloudapi", "floatingip",  # what a failover talks to (lab/operations.py)
    }  # fmt: skip
    active_redis = urlsplit(lab["proxies"][ACTIVE]["redis"])
    assert store(lab, STANDBY).replication().primary == (active_redis.hostname, active_redis.port)
    standby = lab["proxies"][STANDBY]
    tls = ssl.create_default_context(cafile=standby["certificate"])
    with urllib.request.urlopen(standby["https"] + "/hello/", context=tls, timeout=10) as reply:
        assert json.load(reply)["tool"] == "hello", "the standby routes from its replicated Redis"


def test_proxy_list_shows_the_active_the_replicating_standby_and_agreement(lab: dict[str, Any]) -> None:
    caught_up(lab)
    code, data = ctl(lab, "proxy", "list")
    assert code == 0
    rows = {p["name"]: p for p in data["proxies"]}
    assert (rows[ACTIVE]["role"], rows[ACTIVE]["redis_role"]) == ("active", "primary")
    assert (rows[STANDBY]["role"], rows[STANDBY]["redis_role"], rows[STANDBY]["link"]) == (
        "standby", "replica", "up",
    )  # fmt: skip
    assert rows[STANDBY]["replicates_from"] == lab["proxies"][ACTIVE]["redis"].split("//")[1].split("/")[0]
    assert rows[STANDBY]["lag"] is not None and rows[STANDBY]["lag"] >= 0
    assert [p["active_proxy_file"]["names"] for p in data["proxies"]] == [ACTIVE, ACTIVE]
    assert data["hiera"]["names"] == ACTIVE and data["floating_ip"] == ACTIVE
    assert [p["floating_ip"] for p in data["proxies"]] == ["here", ""]
    assert data["agree"] is True and data["disagreements"] == []

    code, shown = ctl(lab, "proxy", "show", STANDBY)
    assert code == 0 and shown["name"] == STANDBY and shown["agrees"] is True
    assert ctl(lab, "active-proxy", "show")[0] == 0

    status = run_cli("lab", "status", "--dir", lab["dir"])
    assert status.code == 0
    assert "proxy-02  standby" in status.stdout and "all sources agree: proxy-01 is active" in status.stdout


def test_a_disagreeing_hiera_is_named_and_active_proxy_show_exits_1(lab: dict[str, Any]) -> None:
    hiera = Path(lab["hiera"])
    before = hiera.read_text()
    hiera.write_text(f"profile::toolforge::active_proxy_host: {STANDBY}\n")
    try:
        code, data = ctl(lab, "active-proxy", "show")
        listed = run_cli("--config", lab["config"], "proxy", "list")
    finally:
        hiera.write_text(before)
    assert code == 1
    assert data["agree"] is False and data["active"] == ACTIVE
    assert data["disagreements"] == [f"hiera ({hiera}) names {STANDBY}, not the active proxy {ACTIVE}"]
    assert "DISAGREE: hiera" in listed.stdout


def test_a_registration_on_the_standby_lands_in_the_active_redis_and_replicates_back(
    lab: dict[str, Any],
) -> None:
    token = tokens.mint(tokens.load_key(Path(lab["dir"]) / "proxylistener" / "key"), "latecomer", 0)
    backend = f"http://127.0.0.1:{free_port()}"

    reply = to_listener(lab, STANDBY, f"register\n.*\n{backend}\n{token}\n")

    assert reply == b"ok", "a client still talking to a standby does not fail"
    assert store(lab, ACTIVE).routes("latecomer") == {".*": backend}, "written to the active proxy's Redis"
    caught_up(lab)
    assert store(lab, STANDBY).routes("latecomer") == {".*": backend}, "and replicated back to the standby"
    assert to_listener(lab, STANDBY, f"unregister\n.*\n{token}\n") == b"ok"
    assert store(lab, ACTIVE).routes("latecomer") == {}


def to_listener(lab: dict[str, Any], proxy: str, request: str) -> bytes:
    """One request to `proxy`'s proxylistener over TCP, as a client sends it; the whole reply."""
    host, port = lab["proxies"][proxy]["proxylistener"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(request.encode())
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(4096), b""))


def metrics(lab: dict[str, Any], proxy: str) -> dict[str, float]:
    """`proxy`'s kube2proxy metrics, each summed over its labels."""
    address = lab["proxies"][proxy]["address"]
    url = f"http://{address}:{lab['fleet']['kube2proxy']['metrics_port']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as page:
        text = page.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def kube(lab: dict[str, Any], method: str, body: dict[str, Any] | None = None) -> None:
    """Create (PUT) or delete the lab's Service tool-kubetool/kubetool, as kubectl would."""
    request = urllib.request.Request(
        f"{lab['kube_api']}/api/v1/namespaces/tool-kubetool/services/kubetool",
        data=json.dumps(body).encode() if body else None, method=method,
        headers={"Authorization": f"Bearer {kubewire.TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    urllib.request.urlopen(request, timeout=10).close()


def test_kube2proxy_writes_only_on_the_active_proxy(lab: dict[str, Any]) -> None:
    checks = metrics(lab, STANDBY)["kube2proxy_active_checks_total"]
    kube(lab, "PUT", kubeapi.service("tool-kubetool", "kubetool", "127.96.0.20"))
    try:
        wait_until(lambda: store(lab, ACTIVE).routes("kubetool"), "the active kube2proxy to write the route")
        # Two more checks of the standby's: one that took itself for active would have written by then.
        again = lambda: metrics(lab, STANDBY)["kube2proxy_active_checks_total"] >= checks + 2  # noqa: E731
        wait_until(again, "the standby kube2proxy to re-check who is active")

        assert store(lab, ACTIVE).routes("kubetool") == {".*": "http://127.96.0.20:8000"}
        active, standby = metrics(lab, ACTIVE), metrics(lab, STANDBY)
        assert (active["kube2proxy_active"], standby["kube2proxy_active"]) == (1, 0)
        assert active["kube2proxy_routes_written_total"] >= 1
        assert standby.get("kube2proxy_routes_written_total", 0) == 0, "the standby wrote nothing"
        assert [e.actor for e in store(lab, ACTIVE).audit("kubetool")] == ["kube2proxy"]
    finally:
        kube(lab, "DELETE")
    wait_until(lambda: not store(lab, ACTIVE).routes("kubetool"), "the active kube2proxy to remove it")
