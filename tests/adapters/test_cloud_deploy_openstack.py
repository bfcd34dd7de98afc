"""`deploy proxy`'s calls of the cloud adapter against a real OpenStack control plane (the slow
tier: `make slow`).

What the fast tier's fake API (tests/adapters/test_cloud_servers.py) says, checked against Neutron
and Nova themselves, through the admin's eyes: the proxies' security groups and their anti-affinity
server group are made once and found again (a second call adds nothing); a proxy's server boots
ACTIVE with the user data deploy rendered, its port in the groups; two servers of the anti-affinity
group are placed on the two compute hosts; a project over its quota gets Nova's reason, and no
server. The cloud is the session's (tests/support/openstack_session.py): everything a test makes is
named after it, and its servers and ports are deleted after it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from toolforgectl.adapters.cloud import Cloud, NewServer, Rule
from toolforgectl.core import config
from toolforgectl.core.errors import CloudError
from toolforgectl.lab.openstack import ACTIVE_TIMEOUT, OpenStackCloud, Proxies
from toolforgectl.workflows import deploy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# deploy's groups (workflows/deploy.py), under names of the test's own
WEB = [Rule(80, 80, "0.0.0.0/0"), Rule(443, 443, "0.0.0.0/0")]
REGISTRATION = [Rule(8282, 8282, "172.16.0.0/21")]
REDIS_PORT = 6379  # from the other proxies only: the group's own members


@dataclass(frozen=True)
class Boot:
    """What a proxy's server is made from: the seeded image, flavor and tenant network."""

    image: str
    flavor: str
    network: str


@dataclass(frozen=True)
class Groups:
    """The ids `ensure_*` returned, and whether each call added anything."""

    web: str
    registration: str
    redis: str
    server_group: str
    added: tuple[bool, ...]


@pytest.fixture
def cloud(openstack_cloud: OpenStackCloud, openstack_proxies: Proxies) -> Iterator[Cloud]:
    adapter = Cloud.connect(openstack_cloud.settings(openstack_proxies.floating_ip))
    yield adapter
    adapter.close()


@pytest.fixture
def boot(openstack_admin: Any, openstack_proxies: Proxies) -> Boot:
    image = openstack_admin.image.find_image("lab-image", ignore_missing=False)
    flavor = openstack_admin.compute.find_flavor("lab.small", ignore_missing=False)
    return Boot(str(image.id), str(flavor.id), openstack_proxies.network_id)


@pytest.fixture
def servers(cloud: Cloud, openstack_admin: Any) -> Iterator[list[str]]:
    """The names of the servers the test creates: deleted after it, with their ports (Nova keeps
    a port it was given when it deletes the server, as deploy's rollback knows)."""
    names: list[str] = []
    yield names
    for name in names:
        cloud.delete_server(name)  # returns once Nova has: the port is free to delete then
        cloud.delete_ports_named(name)


def ensure_groups(cloud: Cloud, prefix: str) -> Groups:
    """The groups as deploy's steps make them: rules from CIDRs, Redis from the group itself."""
    web, web_added = cloud.ensure_security_group(f"{prefix}-web", WEB)
    registration, registration_added = cloud.ensure_security_group(f"{prefix}-registration", REGISTRATION)
    redis, redis_made = cloud.ensure_security_group(f"{prefix}-redis", [])
    redis_rule = [Rule(REDIS_PORT, REDIS_PORT, remote_group=redis)]
    redis_added = cloud.ensure_security_group(f"{prefix}-redis", redis_rule)[1] or redis_made
    server_group, group_made = cloud.ensure_server_group(f"{prefix}-proxies")
    added = (web_added, registration_added, redis_added, group_made)
    return Groups(web, registration, redis, server_group, added)


def what_admin_sees(admin: Any, prefix: str) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Every security group (its id and ingress rules, by rule id) and every server group (its id
    and policy) named `prefix-*`, in any project, as the admin lists them."""
    security: dict[str, list[Any]] = {}
    for group in admin.network.security_groups():
        if group.name.startswith(f"{prefix}-"):
            rules = {
                rule["id"]: (rule["protocol"], rule["port_range_min"], rule["port_range_max"],
                             rule["remote_ip_prefix"], rule["remote_group_id"])
                for rule in group.security_group_rules if rule["direction"] == "ingress"
            }  # fmt: skip
            security.setdefault(group.name, []).append((group.id, rules))
    placement: dict[str, list[Any]] = {}
    for server_group in admin.compute.server_groups(all_projects=True):
        if server_group.name.startswith(f"{prefix}-"):
            policy = server_group.policy or (server_group.policies or [None])[0]
            placement.setdefault(server_group.name, []).append((server_group.id, policy))
    return security, placement


def test_the_security_groups_and_the_server_group_are_made_once_and_found_again(
    cloud: Cloud, openstack_admin: Any, unique_name: str
) -> None:
    first = ensure_groups(cloud, unique_name)
    made = what_admin_sees(openstack_admin, unique_name)

    second = ensure_groups(cloud, unique_name)

    assert first.added == (True, True, True, True)
    assert second == Groups(first.web, first.registration, first.redis, first.server_group, (False,) * 4)
    assert what_admin_sees(openstack_admin, unique_name) == made  # not a group, not a rule more
    security, placement = made
    assert {
        name: [(ident, sorted(rules.values())) for ident, rules in found] for name, found in security.items()
    } == {
        f"{unique_name}-web": [
            (first.web, [("tcp", 80, 80, "0.0.0.0/0", None), ("tcp", 443, 443, "0.0.0.0/0", None)])
        ],
        f"{unique_name}-registration": [(first.registration, [("tcp", 8282, 8282, "172.16.0.0/21", None)])],
        f"{unique_name}-redis": [(first.redis, [("tcp", REDIS_PORT, REDIS_PORT, None, first.redis)])],
    }
    assert placement == {f"{unique_name}-proxies": [(first.server_group, "anti-affinity")]}
    # and what deploy's plan reads back says nothing is lacking
    web = cloud.security_group(f"{unique_name}-web")
    assert web is not None and {rule.key() for rule in WEB} <= web[1]
    assert cloud.server_group_id(f"{unique_name}-proxies") == first.server_group


def proxy_user_data(directory: Path, name: str, address: str) -> str:
    """The user data deploy renders for proxy `name` at `address`, joining a two-proxy fleet."""
    source = directory / "fleet.yaml"
    source.write_text(
        "proxies:\n"
        "  - {name: proxy-01, address: 172.16.0.10, redis: 'redis://172.16.0.10:6379/0'}\n"
        "  - {name: proxy-02, address: 172.16.0.11, redis: 'redis://172.16.0.11:6379/0'}\n"
        f"proxies_dir: {directory / 'proxies.d'}\n",
        encoding="utf-8",
    )
    fleet = config.load(source)
    return deploy.render_user_data(fleet, deploy.entry(fleet, name, address), "proxy-01")


def test_two_proxy_servers_boot_active_with_their_user_data_and_groups_on_two_hosts(
    cloud: Cloud, openstack_admin: Any, boot: Boot, unique_name: str, servers: list[str], tmp_path: Path
) -> None:
    groups = ensure_groups(cloud, unique_name)
    security = (f"{unique_name}-web", f"{unique_name}-registration", f"{unique_name}-redis")
    made = {}
    for n in (1, 2):
        name = f"{unique_name}-proxy-{n}"
        servers.append(name)
        port = cloud.create_port(boot.network, name, security)
        data = proxy_user_data(tmp_path, name, port.fixed_ip)
        spec = NewServer(name, boot.flavor, boot.image, port.port_id, data, groups.server_group)
        made[name] = (cloud.create_server(spec), port.port_id, data)

    for name in made:
        cloud.wait_active(name, ACTIVE_TIMEOUT)

    hosts = {}
    for name, (server_id, port_id, data) in made.items():
        server = openstack_admin.compute.get_server(server_id)  # the admin sees user data (2.3+)
        assert (server.name, server.status) == (name, "ACTIVE")
        assert base64.b64decode(server.user_data).decode() == data
        hosts[name] = server.compute_host
        port = openstack_admin.network.get_port(port_id)
        assert port.device_id == server_id
        assert sorted(port.security_group_ids) == sorted((groups.web, groups.registration, groups.redis))
    assert sorted(hosts.values()) == ["compute-1", "compute-2"]  # anti-affinity: one per host
    members = openstack_admin.compute.get_server_group(groups.server_group).member_ids
    assert sorted(members) == sorted(server_id for server_id, _, _ in made.values())
    assert len(data.encode()) > 30_000  # deploy's real user data, not a token string: Nova took it whole


def test_over_quota_nova_refuses_the_server_with_its_reason_and_makes_none(
    cloud: Cloud, openstack_admin: Any, boot: Boot, unique_name: str, servers: list[str],
    no_room_for_servers: None,
) -> None:  # fmt: skip
    name = f"{unique_name}-proxy"
    servers.append(name)
    port = cloud.create_port(boot.network, name)
    spec = NewServer(name, boot.flavor, boot.image, port.port_id, "#cloud-config\n", None)

    with pytest.raises(CloudError) as raised:
        cloud.create_server(spec)

    assert re.match(
        rf"cloud lab: creating server {name} \(Nova\) failed: HTTP 403 from \S+: "
        r"Quota exceeded for instances: Requested 1, but already used \d+ of 0 instances",
        str(raised.value),
    ), str(raised.value)
    assert cloud.server_status(name) is None
    assert cloud.delete_server(name) is False  # what deploy's rollback then finds: no server
    cloud.delete_ports_named(name)  # and its port, which it deletes
    assert list(openstack_admin.network.ports(name=name)) == []
