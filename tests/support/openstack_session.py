"""One real OpenStack control plane for every slow-tier module that needs it (a pytest plugin,
registered by tests/conftest.py).

Starting the control plane takes 2-3 minutes, and each module used to start its own: now the first
test that asks for `openstack_cloud` starts it, with what every module needs (two compute hosts
for an anti-affinity pair, Designate and BIND for the DNS step), and the session's end stops it.
`openstack_proxies` seeds the fleet's cloud once (the image, the flavor, the networks, servers
proxy-01 and proxy-02, a floating IP on proxy-01).

Sharing means the tests must not lean on each other's leftovers: a test that changes shared state
(the floating IP, the DNS record) puts it back the way it needs it first, and a test that creates
things (servers, ports, security and server groups) gives them names of its own (`unique_name`).

Only the fixtures live here: importing the harness (openstacksdk and all) waits until a slow test
asks for it, so the fast tier does not pay for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from toolforgectl.lab.openstack import OpenStackCloud, Proxies

COMPUTES = 2  # an anti-affinity pair needs two hosts
DNS = True  # the failover's DNS step needs Designate and BIND


@pytest.fixture(scope="session")
def openstack_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenStackCloud]:
    """The control plane, started once for the session (logs: its directory's logs/)."""
    from toolforgectl.lab.openstack import running_openstack

    with running_openstack(tmp_path_factory.mktemp("openstack"), computes=COMPUTES, dns=DNS) as cloud:
        yield cloud


@pytest.fixture(scope="session")
def openstack_proxies(openstack_cloud: OpenStackCloud) -> Proxies:
    """The fleet's cloud, seeded once: proxy-01 and proxy-02, the floating IP on proxy-01; the
    project's quotas of security groups and server groups lifted, as every deploy test makes its
    own (the defaults, 10 of each, would run out a few tests into the session)."""
    from toolforgectl.lab.openstack import PROJECT

    proxies = openstack_cloud.seed_proxies()
    admin = openstack_cloud.connect("lab-admin")
    project = admin.identity.find_project(PROJECT, ignore_missing=False)
    admin.network.update_quota(project.id, security_groups=-1, security_group_rules=-1)
    admin.set_compute_quotas(project.id, server_groups=-1)
    admin.close()
    return proxies


@pytest.fixture(scope="session")
def openstack_admin(openstack_cloud: OpenStackCloud) -> Iterator[Any]:
    """The tests' own hands on the cloud, as its admin: another operator, as far as toolforgectl
    can tell."""
    conn = openstack_cloud.connect("lab-admin")
    yield conn
    conn.close()


@pytest.fixture
def unique_name() -> str:
    """A name no other test of the session uses, for what a test creates in the shared cloud."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def no_room_for_servers(openstack_admin: Any, openstack_proxies: Proxies) -> Iterator[None]:
    """The project toolforgectl works in may have no more servers (Nova's `instances` quota 0),
    until the test ends: a create fails as it would in a full project."""
    from toolforgectl.lab.openstack import PROJECT

    project = openstack_admin.identity.find_project(PROJECT, ignore_missing=False)
    before = openstack_admin.get_compute_quotas(project.id).instances
    openstack_admin.set_compute_quotas(project.id, instances=0)
    try:
        yield
    finally:
        openstack_admin.set_compute_quotas(project.id, instances=before)
