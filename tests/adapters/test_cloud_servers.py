"""The cloud adapter's server calls (deploy proxy, proxy remove) over real HTTP to the lab's cloud
API: security groups and server groups ensured, ports and servers created and deleted, a server
stuck in BUILD or going to ERROR, a quota error. No lab directory: servers are created, not booted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.cloudlab import LabCloud, running_cloud
from toolforgectl.adapters.cloud import Cloud, NewServer, Rule
from toolforgectl.core.errors import CloudError, NotFoundError, TimedOutError


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabCloud]:
    with running_cloud(tmp_path / "cloud") as lab:
        yield lab


@pytest.fixture
def cloud(lab: LabCloud) -> Iterator[Cloud]:
    cloud = lab.connect()
    yield cloud
    cloud.close()


def server(cloud: Cloud, name: str = "proxy-03") -> str:
    port = cloud.create_port("lab", name)
    return cloud.create_server(NewServer(name, "g3.small", "debian-12", port.port_id, "#cloud-config\n"))


def test_a_security_group_is_created_once_and_completed_with_missing_rules(cloud: Cloud) -> None:
    web = [Rule(80, 80, "0.0.0.0/0"), Rule(443, 443, "0.0.0.0/0")]
    ident, added = cloud.ensure_security_group("proxy-web", web)
    assert added
    assert cloud.ensure_security_group("proxy-web", web) == (ident, False), "a second call adds nothing"
    more = [*web, Rule(6379, 6379, remote_group=ident)]
    assert cloud.ensure_security_group("proxy-web", more) == (ident, True)
    found = cloud.security_group("proxy-web")
    assert found is not None and {rule.key() for rule in more} <= found[1]


def test_the_anti_affinity_server_group_is_created_once(lab: LabCloud, cloud: Cloud) -> None:
    ident, created = cloud.ensure_server_group("toolforge-proxies")
    assert created and cloud.ensure_server_group("toolforge-proxies") == (ident, False)
    assert lab.state.server_groups[ident]["policies"] == ["anti-affinity"]


def test_a_server_is_in_the_security_groups_of_its_port(lab: LabCloud, cloud: Cloud) -> None:
    cloud.ensure_security_group("proxy-web", [Rule(80, 80, "0.0.0.0/0")])
    port = cloud.create_port("lab", "proxy-03", ("proxy-web",))
    ident = cloud.create_server(NewServer("proxy-03", "f", "i", port.port_id, "#cloud-config\n"))
    assert lab.state.servers[ident].security_groups == ["proxy-web"]
    with pytest.raises(NotFoundError, match=r"^cloud lab: no security group proxy-nope "):
        cloud.create_port("lab", "proxy-04", ("proxy-nope",))


def test_a_server_gets_the_address_of_its_port_which_outlives_it_until_deleted_by_name(
    lab: LabCloud, cloud: Cloud
) -> None:
    port = cloud.create_port("lab", "proxy-03")
    assert port.fixed_ip == "127.0.0.13", "the next free lab address"
    cloud.create_server(NewServer("proxy-03", "f", "i", port.port_id, "#cloud-config\n"))
    cloud.wait_active("proxy-03", timeout=10)
    assert cloud.server_port("proxy-03") == port
    assert cloud.delete_server("proxy-03") and cloud.server_status("proxy-03") is None
    assert cloud.delete_server("proxy-03") is False
    # As Nova does with a port it was given: the port stays, and keeps its address from others.
    assert [made["name"] for made in lab.state.ports.values()] == ["proxy-03"]
    assert cloud.create_port("lab", "proxy-04").fixed_ip == "127.0.0.14"
    cloud.delete_ports_named("proxy-03")
    assert [made["name"] for made in lab.state.ports.values()] == ["proxy-04"]


def test_a_server_going_to_error_fails_at_once_naming_it(lab: LabCloud, cloud: Cloud) -> None:
    lab.api.compute.boot_mode = "error"
    server(cloud)
    with pytest.raises(CloudError, match="server proxy-03 went to ERROR while it was being built"):
        cloud.wait_active("proxy-03", timeout=30)


def test_a_server_stuck_in_build_times_out_naming_build(lab: LabCloud, cloud: Cloud) -> None:
    lab.api.compute.boot_mode = "stuck"
    server(cloud)
    with pytest.raises(TimedOutError, match=r"server proxy-03 is still BUILD after 1s \(stuck in BUILD"):
        cloud.wait_active("proxy-03", timeout=1)


def test_a_quota_error_names_the_call(lab: LabCloud, cloud: Cloud) -> None:
    lab.api.fail_next(status=403, method="POST", path="servers")
    port = cloud.create_port("lab", "proxy-03")
    with pytest.raises(CloudError, match=r"creating server proxy-03 \(Nova\) failed: HTTP 403"):
        cloud.create_server(NewServer("proxy-03", "f", "i", port.port_id, ""))
    cloud.delete_ports_named("proxy-03")
    assert lab.state.ports == {}, "the port made for it can be cleaned up by name"
