"""`toolforgectl deploy proxy` and `proxy remove` on the two-proxy lab, whose cloud boots a new
proxy "VM" on 127.0.0.13 from the rendered user data; the CLI as a process, as an operator runs it.

One lab for the module. The tests that leave the fleet as they found it come first; the last one
is the issue's "done when": deploy a third proxy, fail over to it, remove the old active one, with
requests and registrations flowing throughout and none lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest
import yaml

from tests.conftest import wait_until
from tests.support.lab import audit_steps, cli, two_proxy_lab
from tests.support.traffic import RegistrationLoad, RequestLoad
from tests.workflows.test_failover import load_tokens
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import config
from toolforgectl.workflows import deploy


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with two_proxy_lab(tmp_path_factory.mktemp("deploy") / "lab") as state:
        yield state


def proxies(lab: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`proxy list --json`, by proxy."""
    listed = cli(lab, "proxy", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {row["name"]: row for row in json.loads(listed.stdout)["data"]["proxies"]}


def membership(lab: dict[str, Any]) -> dict[str, Any]:
    """Everything a deploy registers: hiera, the fleet's entries, the cloud's servers and ports."""
    directory = Path(lab["dir"])
    cloud = json.loads((directory / "cloud" / "cloud.json").read_text())
    return {
        "hiera": (directory / "hiera.yaml").read_text(),
        "entries": sorted(path.name for path in (directory / "proxies.d").glob("*.yaml")),
        "servers": sorted(server["name"] for server in cloud["servers"]),
        "ports": cloud.get("ports", {}),
    }


def lab_cloud(lab: dict[str, Any], action: str, body: dict[str, Any]) -> None:
    """A control call to the lab's cloud API (docs/cloud.md)."""
    clouds = json.loads((Path(lab["dir"]) / "cloud" / "clouds.yaml").read_text())
    base = clouds["clouds"]["lab"]["auth"]["auth_url"].rsplit("/v3", 1)[0]
    request = Request(f"{base}/lab/{action}", json.dumps(body).encode(), method="POST")
    with urlopen(request, timeout=10) as answer:
        assert answer.status == 200


@pytest.mark.parametrize(
    ("names", "chosen"),
    [
        (["proxy-01", "proxy-02"], "proxy-03"),
        (["proxy-01", "proxy-03"], "proxy-02"),
        (["tools-proxy-05"], "tools-proxy-01"),
    ],
)
def test_the_next_free_name_keeps_the_fleet_s_prefix_and_width(names: list[str], chosen: str) -> None:
    fleet = config.parse("proxies: [" + ", ".join(f"{{name: {n}}}" for n in names) + "]\n", "fleet.yaml")
    assert deploy.next_name(fleet) == chosen


def test_the_user_data_is_cloud_config_with_the_data_plane_a_replica_and_the_active_proxy(
    tmp_path: Path,
) -> None:
    source = tmp_path / "fleet.yaml"
    source.write_text("proxies: [{name: proxy-01, address: 172.16.0.10}]\n")
    fleet = config.load(source)
    proxy = deploy.entry(fleet, "proxy-02", "172.16.0.11")
    text = deploy.render_user_data(fleet, proxy, "proxy-01")
    assert text.startswith("#cloud-config\n")
    files = {f["path"]: f for f in yaml.safe_load(text)["write_files"]}
    assert "replicaof 172.16.0.10 6379" in files["/etc/nginx/toolforgectl/redis.conf"]["content"]
    assert "listen 172.16.0.11:443" in files["/etc/nginx/toolforgectl/urlproxy.conf"]["content"]
    assert files["/etc/active-proxy"] == {
        "path": "/etc/active-proxy",
        "permissions": "0444",
        "content": "proxy-01",
    }
    assert files["/etc/toolforgectl/config.yaml"]["content"] == source.read_text()


def test_a_dry_run_plans_the_next_free_name_and_changes_nothing(lab: dict[str, Any]) -> None:
    before = membership(lab)
    done = cli(lab, "deploy", "proxy", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "server proxy-03" in done.stderr and "planned" in done.stderr
    assert membership(lab) == before


def test_a_server_going_to_error_is_a_clear_failure_and_nothing_is_left_registered(
    lab: dict[str, Any],
) -> None:
    before = membership(lab)
    lab_cloud(lab, "boot", {"mode": "error"})
    done = cli(lab, "deploy", "proxy", "--yes", "--reason", "test: error")
    assert done.returncode == 1
    assert "server proxy-03 went to ERROR while it was being built" in done.stderr
    assert "rolled back, nothing is left changed" in done.stderr
    assert membership(lab) == before, "hiera, the fleet and the cloud are as they were"


def test_deploying_an_existing_healthy_proxy_changes_nothing_and_says_so(lab: dict[str, Any]) -> None:
    before = membership(lab)
    done = cli(lab, "deploy", "proxy", "proxy-02", "--yes")
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stderr
    assert membership(lab) == before


def test_removing_the_active_proxy_is_refused(lab: dict[str, Any]) -> None:
    before = membership(lab)
    done = cli(lab, "proxy", "remove", "proxy-01", "--yes")
    assert done.returncode == 1
    assert "proxy-01 is the active proxy" in done.stderr and "fail over first" in done.stderr
    assert membership(lab) == before


def test_a_deploy_killed_after_its_server_was_created_resumes_and_the_proxy_joins(
    lab: dict[str, Any],
) -> None:
    """The run dies with a server in the cloud that no hiera list names yet: `--resume` finishes it
    (the server is found, not created twice), and `proxy remove` then leaves the fleet as it was."""
    before = membership(lab)
    runs = Path(lab["dir"]) / "runs"
    started = set(runs.glob("*.jsonl")) if runs.exists() else set()
    argv = [sys.executable, "-m", "toolforgectl", "--config", lab["config"],
            "deploy", "proxy", "--yes", "--reason", "test: killed"]  # fmt: skip
    env = {**os.environ, "TOOLFORGECTL_CONFIG": "/nonexistent"}
    run = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        audit = wait_until(lambda: next(iter(set(runs.glob("*.jsonl")) - started), None), "the run's audit")
        wait_until(
            lambda: "create-proxy-server" in audit_steps(audit) or run.poll() is not None,
            "the server to be created",
        )
        run.send_signal(signal.SIGKILL)
    finally:
        run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, "the run was killed before it finished"
    assert "proxy-03" in membership(lab)["servers"]
    resumed = cli(lab, "deploy", "proxy", "--resume", audit.stem, "--yes", "--reason", "test: killed")
    assert resumed.returncode == 0, resumed.stderr
    assert membership(lab)["servers"].count("proxy-03") == 1, "the resumed run found the server it made"
    row = proxies(lab)["proxy-03"]
    assert (row["role"], row["redis_role"], row["link"]) == ("standby", "replica", "up")
    removed = cli(lab, "proxy", "remove", "proxy-03", "--yes", "--reason", "test: killed, cleaned up")
    assert removed.returncode == 0, removed.stderr
    assert membership(lab) == before, "hiera, the fleet and the cloud are as they were"


def test_deploy_a_third_proxy_fail_over_to_it_and_remove_the_old_one_losing_nothing(
    lab: dict[str, Any],
) -> None:
    directory = Path(lab["dir"])

    def resolve(name: str) -> str:  # the lab's names are not in DNS; deployed ones join later
        entry = directory / "proxies.d" / f"{name}.yaml"
        return str(yaml.safe_load(entry.read_text())["address"]) if entry.exists() else name

    requests = RequestLoad(
        "127.0.0.10", int(lab["fleet"]["dataplane"]["https_port"]), ("/hello/", "/echo/"), rate=30
    )
    registrations = RegistrationLoad(
        directory / "grid" / "active-proxy",
        int(lab["fleet"]["proxylistener"]["port"]),
        load_tokens(lab, 40),
        rate=5,
        resolve=resolve,
    )
    with requests, registrations:
        wait_until(lambda: len(registrations.report.acknowledged) >= 5, "registrations to flow")
        deployed = cli(lab, "deploy", "proxy", "--yes", "--reason", "test: a third proxy")
        assert deployed.returncode == 0, deployed.stderr
        row = proxies(lab)["proxy-03"]
        assert (row["role"], row["redis_role"], row["link"]) == ("standby", "replica", "up")
        moved = cli(lab, "failover", "--to", "proxy-03", "--yes", "--reason", "test: to the new one")
        assert moved.returncode == 0, moved.stderr
        removed = cli(lab, "proxy", "remove", "proxy-01", "--yes", "--reason", "test: the old one")
        assert removed.returncode == 0, removed.stderr
        wait_until(lambda: len(registrations.report.acknowledged) >= 15, "registrations after it all")
    seen, registered = requests.report, registrations.report
    assert seen.failures == [], f"{seen.failed} of {seen.sent} requests failed"
    assert registered.failures == []
    after = proxies(lab)
    assert sorted(after) == ["proxy-02", "proxy-03"] and after["proxy-03"]["role"] == "active"
    assert "proxy-01" not in membership(lab)["servers"]
    shown = cli(lab, "lab", "status", "--dir", lab["dir"], "--json")
    processes = json.loads(shown.stdout)["data"]["processes"]
    assert [p["name"] for p in processes if not p["alive"]] == [], "every daemon the lab records runs"
    assert {p["host"] for p in processes if p["role"] == "proxylistener"} == {"127.0.0.12", "127.0.0.13"}
    for proxy in after:  # every acknowledged route, on both remaining Redis
        store = RouteStore.from_url(after[proxy]["redis"])
        wait_until(lambda s=store: not registered.missing(s.routes), f"every route on {proxy}")
