"""`deploy proxy`'s cloud steps through the playbook runner, against real Keystone, Neutron and Nova
(the slow tier: `make slow`).

The steps are playbooks/deploy-proxy.yaml's own entries up to and including create-proxy-server
(ensure-security-groups, ensure-server-group, create-proxy-server), with names of the test's own
so the session's shared cloud keeps the tests apart. What follows them (hiera, converging the
peers, verifying replication and traffic) needs a proxy that really boots: Nova's FakeDriver boots
nothing, so no cloud-init runs and no sshd answers at the server's address. The one thing
create-proxy-server waits for on the VM itself, its active-proxy file over SSH, is stood in for
(`booted`): answering at once, or never (a VM that does not come up).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, RedisServer
from tests.workflows.test_failover_openstack import Operator
from toolforgectl.adapters.processes import start_redis
from toolforgectl.core import config
from toolforgectl.core.config import Fleet, Proxy
from toolforgectl.core.errors import TimedOutError
from toolforgectl.core.models import Attribution
from toolforgectl.lab.openstack import OpenStackCloud, Proxies
from toolforgectl.workflows import deploy
from toolforgectl.workflows.playbook import runner, spec
from toolforgectl.workflows.playbook.context import StepContext
from toolforgectl.workflows.playbook.report import Report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CLOUD_STEPS = ("ensure-security-groups", "ensure-server-group", "create-proxy-server")
SECURITY = ("web", "registration", "redis", "internal")  # GroupsOptions' fields


def cloud_steps(directory: Path, prefix: str) -> Path:
    """playbooks/deploy-proxy.yaml cut after create-proxy-server (no preflight: it reaches the
    proxies over SSH), its groups named `prefix-*`; the directory it is in."""
    real = yaml.safe_load((REPO / "playbooks" / "deploy-proxy.yaml").read_text(encoding="utf-8"))
    entries = [entry for entry in real["steps"] if entry["step"] in CLOUD_STEPS]
    assert [entry["step"] for entry in entries] == list(CLOUD_STEPS)  # the real playbook's order
    groups = {field: f"{prefix}-{field}" for field in SECURITY}
    entries[0]["options"] = {**entries[0].get("options", {}), **groups}
    entries[1]["options"] = {**entries[1].get("options", {}), "name": f"{prefix}-proxies"}
    entries[2]["options"] = {
        **entries[2].get("options", {}),
        "server_group": f"{prefix}-proxies",
        "security_groups": list(groups.values()),
    }
    doc = {**real, "name": "deploy-proxy-cloud", "steps": entries}
    del doc["preflight"]
    where = directory / "playbooks"
    where.mkdir()
    (where / "deploy-proxy-cloud.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return where


@pytest.fixture
def fleet(
    tmp_path: Path, redis_server: RedisServer, openstack_cloud: OpenStackCloud, openstack_proxies: Proxies
) -> Iterator[Fleet]:
    """Two proxies, each with a Redis (where the run's lock lives), `proxies_dir` for deploy's
    fleet entries, and the real cloud as `cloud:`; read from a file, as deploy reads it again."""
    second = start_redis(tmp_path / "redis-2")
    source = tmp_path / "fleet.yaml"
    source.write_text(
        f"proxies:\n"
        f"  - {{name: proxy-01, address: 172.16.0.10, redis: '{redis_server.url}'}}\n"
        f"  - {{name: proxy-02, address: 172.16.0.11, redis: 'redis://127.0.0.1:{second.port}/0'}}\n"
        f"proxies_dir: {tmp_path / 'proxies.d'}\n"
        f"cloud: {{name: lab, floating_ip: '{openstack_proxies.floating_ip}',"
        f" clouds_yaml: '{openstack_cloud.clouds_yaml}'}}\n"
        f"operations: {{state_dir: '{tmp_path / 'runs'}'}}\n",
        encoding="utf-8",
    )
    try:
        yield config.load(source)
    finally:
        second.stop()


@pytest.fixture
def args(openstack_admin: Any, openstack_proxies: Proxies, unique_name: str) -> dict[str, str]:
    """What `deploy proxy NAME` passes: the seeded image, flavor and tenant network."""
    image = openstack_admin.image.find_image("lab-image", ignore_missing=False)
    flavor = openstack_admin.compute.find_flavor("lab.small", ignore_missing=False)
    return {
        "name": f"{unique_name}-proxy",
        "flavor": str(flavor.id),
        "image": str(image.id),
        "network": openstack_proxies.network_id,
        "active": "proxy-01",
    }


@pytest.fixture
def booted(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[Proxy], None]], list[str]]:
    """Stand in for the VM's answer over SSH: `booted(answer)` makes create-proxy-server call
    `answer(proxy)` where it would wait for cloud-init; returns the proxies it was asked about."""

    def stand_in(answer: Callable[[Proxy], None]) -> list[str]:
        asked: list[str] = []

        def wait_booted(self: Any, ctx: StepContext, proxy: Proxy, timeout: float) -> None:
            asked.append(f"{proxy.name} at {proxy.address}")
            answer(proxy)

        monkeypatch.setattr(deploy.CreateProxyServer, "_wait_booted", wait_booted)
        return asked

    return stand_in


@pytest.fixture
def cleanup(openstack_cloud: OpenStackCloud, args: dict[str, str]) -> Iterator[None]:
    """Whatever a failed test left of its server and port is deleted (the cloud is shared)."""
    yield
    user = openstack_cloud.connect()
    for server in user.compute.servers(name=f"^{args['name']}$"):
        user.compute.delete_server(server.id)
        user.compute.wait_for_delete(server, wait=120)
    for port in user.network.ports(name=args["name"]):
        user.network.delete_port(port.id)
    user.close()


def deploy_run(fleet: Fleet, playbooks: Path, args: dict[str, str]) -> tuple[Report, Operator]:
    operator = Operator()
    request = runner.Request(
        spec.find("deploy-proxy-cloud", playbooks), args, Attribution("alice@bastion"), interactive=True
    )
    return runner.run(fleet, request, operator), operator


def servers_named(admin: Any, name: str) -> list[Any]:
    return [s for s in admin.compute.servers(all_projects=True, name=f"^{name}$") if s.status != "DELETED"]


def ports_named(admin: Any, name: str) -> list[Any]:
    return list(admin.network.ports(name=name))


def test_the_cloud_steps_plan_then_make_the_proxy_s_server_and_a_second_run_finds_it_done(
    fleet: Fleet, openstack_admin: Any, args: dict[str, str], unique_name: str, tmp_path: Path,
    booted: Callable[[Callable[[Proxy], None]], list[str]], cleanup: None,
) -> None:  # fmt: skip
    playbooks = cloud_steps(tmp_path, unique_name)
    asked = booted(lambda proxy: None)
    name = args["name"]

    report, operator = deploy_run(fleet, playbooks, args)

    assert report.error is None, report.error
    assert report.result == "ok"
    assert [status for status, _ in operator.plan_shown] == ["planned"] * 3
    assert [step.status for step in report.steps] == ["done"] * 3
    (server,) = servers_named(openstack_admin, name)
    (port,) = ports_named(openstack_admin, name)
    address = port.fixed_ips[0]["ip_address"]
    assert asked == [f"{name} at {address}"]  # waited for the VM at the port's address
    server = openstack_admin.compute.get_server(server.id)
    assert server.status == "ACTIVE"
    entry = yaml.safe_load((tmp_path / "proxies.d" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert entry["address"] == address
    expected = deploy.render_user_data(fleet, deploy.entry(fleet, name, address), "proxy-01")
    assert base64.b64decode(server.user_data).decode() == expected  # the admin sees it (2.3+)
    groups = {
        g.name: g.id for g in openstack_admin.network.security_groups() if g.name.startswith(unique_name)
    }
    assert sorted(port.security_group_ids) == sorted(groups[f"{unique_name}-{field}"] for field in SECURITY)
    (group,) = [
        g for g in openstack_admin.compute.server_groups(all_projects=True) if g.name.startswith(unique_name)
    ]
    assert group.member_ids == [server.id]

    # Run again as the fleet was when the first run started: the lock lives on each proxy's Redis,
    # and the new proxy's would be on its VM, which FakeDriver does not boot.
    again, operator = deploy_run(fleet, playbooks, args)

    assert again.result == "nothing to do", again.error
    assert [status for status, _ in operator.plan_shown] == ["already done"] * 3
    assert [s.id for s in servers_named(openstack_admin, name)] == [server.id]
    assert [p.id for p in ports_named(openstack_admin, name)] == [port.id]
    assert asked == [f"{name} at {address}"]  # not created again, not waited for again


def test_over_quota_the_run_rolls_back_and_leaves_no_server_no_port_no_fleet_entry(
    fleet: Fleet, openstack_admin: Any, args: dict[str, str], unique_name: str, tmp_path: Path,
    booted: Callable[[Callable[[Proxy], None]], list[str]], no_room_for_servers: None, cleanup: None,
) -> None:  # fmt: skip
    playbooks = cloud_steps(tmp_path, unique_name)
    asked = booted(lambda proxy: None)
    name = args["name"]

    report, _ = deploy_run(fleet, playbooks, args)

    assert report.result == "rolled back"
    assert f"creating server {name} (Nova) failed: HTTP 403" in str(report.error)
    assert "Quota exceeded for instances" in str(report.error)
    assert [step.status for step in report.steps] == ["rolled back", "rolled back", "failed"]
    assert asked == []
    assert servers_named(openstack_admin, name) == []
    assert ports_named(openstack_admin, name) == []  # the port made before the server: deleted
    assert not (tmp_path / "proxies.d" / f"{name}.yaml").exists()
    # the groups are every proxy's and stay (deploy.py says why): once each, nothing stray
    security = [g.name for g in openstack_admin.network.security_groups() if g.name.startswith(unique_name)]
    assert sorted(security) == sorted(f"{unique_name}-{field}" for field in SECURITY)
    placement = [g.name for g in openstack_admin.compute.server_groups(all_projects=True)]
    assert [g for g in placement if g.startswith(unique_name)] == [f"{unique_name}-proxies"]


def test_a_server_that_never_comes_up_is_deleted_with_its_port_and_its_fleet_entry(
    fleet: Fleet, openstack_admin: Any, args: dict[str, str], unique_name: str, tmp_path: Path,
    booted: Callable[[Callable[[Proxy], None]], list[str]], cleanup: None,
) -> None:  # fmt: skip
    playbooks = cloud_steps(tmp_path, unique_name)
    name = args["name"]
    seen: list[tuple[str, int, bool]] = []  # when cloud-init is waited for: Nova's, Neutron's, ours

    def never(proxy: Proxy) -> None:
        (server,) = servers_named(openstack_admin, name)
        listed = (tmp_path / "proxies.d" / f"{name}.yaml").exists()
        seen.append((server.status, len(ports_named(openstack_admin, name)), listed))
        raise TimedOutError(f"timed out waiting for cloud-init on {name} (its active-proxy file over SSH)")

    booted(never)

    report, _ = deploy_run(fleet, playbooks, args)

    assert report.result == "rolled back"
    assert "cloud-init on" in str(report.error)
    assert seen == [("ACTIVE", 1, True)]  # there was something to undo
    assert servers_named(openstack_admin, name) == []  # the rollback waited for Nova's delete,
    assert ports_named(openstack_admin, name) == []  # then deleted the port (Neutron refuses before)
    assert not (tmp_path / "proxies.d" / f"{name}.yaml").exists()
