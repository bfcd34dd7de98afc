"""The cloud adapter against a real OpenStack control plane (the slow tier: `make slow`).

What the fast tier's fake API (tests/adapters/test_cloud.py) says about Neutron, checked against
Neutron itself: the floating IP is found by address, a move is a compare-and-swap on
`revision_number` that Neutron enforces with `If-Match`, and a token Keystone no longer honours is
replaced in the middle of a move; the failover's DNS record changes through Designate, as BIND then
answers. Keystone, Neutron, Nova, Designate and BIND are real (tests/support/openstack_cloud.py),
started once for the session (tests/support/openstack_session.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openstack.network.v2._proxy import Proxy as NetworkProxy

from tests.support.openstack_cloud import before_the_put
from toolforgectl.adapters.cloud import Cloud
from toolforgectl.core.errors import CloudConflictError, NotFoundError
from toolforgectl.core.waiting import wait_until
from toolforgectl.lab.openstack import OpenStackCloud, Proxies

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ZONE, NAME = "lab.test.", "tools.lab.test."
OLD, NEW = "203.0.113.11", "203.0.113.12"  # documentation addresses: nothing is ever sent to them
PROPAGATION = 90.0  # Designate to BIND takes ~4 s idle; a loaded machine is slower


@pytest.fixture
def proxies(openstack_proxies: Proxies) -> Proxies:
    """The session's seeded fleet cloud (tests/support/openstack_session.py)."""
    return openstack_proxies


@pytest.fixture
def admin(openstack_admin: Any) -> Any:
    """The test's own hands on the cloud: another operator, as far as the adapter can tell."""
    return openstack_admin


@pytest.fixture
def on_proxy_01(admin: Any, proxies: Proxies) -> Any:
    """Each test starts with the floating IP on proxy-01 (put back by the admin if a test moved it)."""
    fip = admin.network.get_ip(proxies.floating_ip_id)
    (port,) = admin.network.ports(device_id=proxies.servers["proxy-01"])
    if fip.port_id != port.id:
        admin.network.update_ip(fip, port_id=port.id)

    def settled() -> list[Any]:
        """[the floating IP] once ACTIVE: the L3 agent's stand-in has nothing more to report then,
        so no revision bump can land in the middle of the test."""
        now = admin.network.get_ip(proxies.floating_ip_id)
        return [now] if now.status == "ACTIVE" else []

    return wait_until(settled, "the floating IP to be ACTIVE on proxy-01", 60, 0.2)[0]


@pytest.fixture
def cloud(openstack_cloud: OpenStackCloud, proxies: Proxies) -> Iterator[Cloud]:
    adapter = Cloud.connect(openstack_cloud.settings(proxies.floating_ip))
    yield adapter
    adapter.close()


def test_finds_the_floating_ip_and_the_port_of_each_server(
    cloud: Cloud, proxies: Proxies, on_proxy_01: Any
) -> None:
    fip = cloud.floating_ip(proxies.floating_ip)
    port = cloud.server_port("proxy-02")

    assert (fip.id, fip.address, fip.port_id) == (
        proxies.floating_ip_id,
        proxies.floating_ip,
        on_proxy_01.port_id,
    )
    assert (fip.fixed_ip, fip.revision) == (proxies.fixed_ips["proxy-01"], on_proxy_01.revision_number)
    assert port.fixed_ip == proxies.fixed_ips["proxy-02"]
    # by id as well as by name, as the fleet's `servers:` may give either
    assert cloud.server_port(proxies.servers["proxy-02"]) == port


def test_an_unknown_floating_ip_or_server_is_not_found(cloud: Cloud, proxies: Proxies) -> None:
    with pytest.raises(NotFoundError, match=r"^cloud lab: no floating IP 203.0.113.254 "):
        cloud.floating_ip("203.0.113.254")
    # Nova's name filter is a regex search: "proxy-0" finds both, and neither is called that
    with pytest.raises(NotFoundError, match=r"^cloud lab: no server 'proxy-0' "):
        cloud.server_port("proxy-0")


def test_a_move_points_the_floating_ip_at_the_other_server_and_nova_shows_it(
    cloud: Cloud, admin: Any, proxies: Proxies, on_proxy_01: Any
) -> None:
    plan = cloud.plan_move(proxies.floating_ip, "proxy-02")
    assert not plan.done
    assert plan.floating_ip.revision == on_proxy_01.revision_number

    moved = cloud.move_floating_ip(proxies.floating_ip, "proxy-02", plan.floating_ip.revision)

    assert moved.fixed_ip == proxies.fixed_ips["proxy-02"]
    assert moved.revision > plan.floating_ip.revision
    assert admin.network.get_ip(proxies.floating_ip_id).fixed_ip_address == proxies.fixed_ips["proxy-02"]
    assert cloud.plan_move(proxies.floating_ip, "proxy-02").done
    # Neutron told Nova: the server's addresses now carry the floating IP, as an operator sees it
    wait_until(
        lambda: floating_addresses(admin, proxies.servers["proxy-02"]) == [proxies.floating_ip],
        "Nova to show the floating IP on proxy-02",
        timeout=60,
        interval=0.5,
    )


def test_wait_associated_returns_once_the_router_reported_the_floating_ip_active(
    cloud: Cloud, admin: Any, proxies: Proxies, on_proxy_01: Any
) -> None:
    admin.network.update_ip(proxies.floating_ip_id, port_id=None)
    wait_until(
        lambda: admin.network.get_ip(proxies.floating_ip_id).status == "DOWN",
        "the agent to report DOWN",
        60,
        0.2,
    )
    revision = cloud.floating_ip(proxies.floating_ip).revision

    moved = cloud.move_floating_ip(proxies.floating_ip, "proxy-02", revision)
    assert (moved.status, moved.revision) == ("DOWN", revision + 1)  # Neutron has it; no router said so yet
    held = cloud.wait_associated(proxies.floating_ip, proxies.fixed_ips["proxy-02"], timeout=60)

    assert (held.fixed_ip, held.status) == (proxies.fixed_ips["proxy-02"], "ACTIVE")
    assert held.revision == moved.revision + 1  # the agent's report is a change like any other


def test_a_revision_older_than_neutron_s_is_refused_before_any_write(
    cloud: Cloud, admin: Any, proxies: Proxies, on_proxy_01: Any
) -> None:
    seen = cloud.floating_ip(proxies.floating_ip)
    touched = admin.network.update_ip(proxies.floating_ip_id, description="another operator was here")

    with pytest.raises(CloudConflictError) as raised:
        cloud.move_floating_ip(proxies.floating_ip, "proxy-02", seen.revision)

    assert str(raised.value) == (
        f"cloud lab: the floating IP changed since it was read: {proxies.floating_ip} was expected at "
        f"revision {seen.revision}; it is at revision {touched.revision_number}, pointing at "
        f"{proxies.fixed_ips['proxy-01']}. Nothing was changed: read it again and decide again"
    )
    assert unchanged_since(admin, proxies, touched.revision_number)


def test_a_change_between_the_read_and_the_write_gets_412_from_neutron_and_changes_nothing(
    cloud: Cloud, admin: Any, proxies: Proxies, on_proxy_01: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = cloud.floating_ip(proxies.floating_ip)
    touched: list[int] = []

    def another_operator(_: NetworkProxy) -> None:
        fip = admin.network.update_ip(proxies.floating_ip_id, description="changed just now")
        touched.append(fip.revision_number)

    puts = before_the_put(monkeypatch, another_operator)

    with pytest.raises(CloudConflictError) as raised:
        cloud.move_floating_ip(proxies.floating_ip, "proxy-02", seen.revision)

    assert len(puts) == 1  # the adapter's own read saw the old revision: Neutron refused the PUT
    assert touched == [seen.revision + 1]
    assert f"was expected at revision {seen.revision}; it is at revision {touched[0]}," in str(raised.value)
    assert unchanged_since(admin, proxies, touched[0])


def test_a_token_keystone_stops_honouring_mid_move_is_replaced_and_the_move_happens_once(
    cloud: Cloud, openstack_cloud: OpenStackCloud, admin: Any, proxies: Proxies, on_proxy_01: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    seen = cloud.floating_ip(proxies.floating_ip)  # the adapter holds a token from here on
    revoked: list[str] = []
    adapters: list[NetworkProxy] = []

    def keystone_drops_the_token(network: NetworkProxy) -> None:
        token = network.get_token()
        assert token is not None
        adapters.append(network)
        # Revoked, the token is refused exactly as an expired one is: Neutron answers 401.
        admin.identity.delete("/auth/tokens", headers={"X-Subject-Token": token}).raise_for_status()
        revoked.append(token)

    before_the_put(monkeypatch, keystone_drops_the_token)

    moved = cloud.move_floating_ip(proxies.floating_ip, "proxy-02", seen.revision)

    assert revoked  # the token the reads used died before the write, and a new one made it
    assert adapters[0].get_token() not in (None, revoked[0])
    assert moved.fixed_ip == proxies.fixed_ips["proxy-02"]
    assert moved.revision == seen.revision + 1  # one write went through: the retry was not a second move
    assert cloud.floating_ip(proxies.floating_ip).revision == moved.revision


def floating_addresses(admin: Any, server_id: str) -> list[str]:
    """The floating addresses Nova lists for server `server_id`."""
    addresses = admin.compute.get_server(server_id).addresses or {}
    return [a["addr"] for net in addresses.values() for a in net if a.get("OS-EXT-IPS:type") == "floating"]


def unchanged_since(admin: Any, proxies: Proxies, revision: int) -> bool:
    """Whether the floating IP is still on proxy-01 at `revision` (nothing more was written)."""
    fip = admin.network.get_ip(proxies.floating_ip_id)
    return (fip.fixed_ip_address, fip.revision_number) == (proxies.fixed_ips["proxy-01"], revision)


@pytest.fixture(scope="module")
def zone(openstack_cloud: OpenStackCloud) -> Iterator[Any]:
    """Zone lab.test. with A record tools.lab.test. (made by hand once, as the runbook says), in the
    project's Designate, served by BIND."""
    user = openstack_cloud.connect()
    created = user.dns.create_zone(name=ZONE, email="hostmaster@lab.test", ttl=30)
    wait_until(
        lambda: user.dns.get_zone(created).status == "ACTIVE", "zone lab.test. to be ACTIVE", PROPAGATION, 0.5
    )
    user.dns.create_recordset(created, name=NAME, type="A", records=[OLD], ttl=30)
    yield created
    user.close()


@pytest.fixture
def record_on_old(openstack_cloud: OpenStackCloud, zone: Any) -> None:
    """Each DNS test starts with the record holding OLD, in Designate and in BIND's answer."""
    user = openstack_cloud.connect()
    (recordset,) = user.dns.recordsets(zone, name=NAME, type="A")
    if recordset.records != [OLD]:
        user.dns.update_recordset(recordset, records=[OLD])
    user.close()
    wait_until(lambda: openstack_cloud.dig(NAME) == [OLD], f"BIND to answer {OLD}", PROPAGATION, 0.5)


def test_the_dns_record_is_read_and_changed_through_designate_and_bind_answers_the_new_address(
    cloud: Cloud, openstack_cloud: OpenStackCloud, record_on_old: None
) -> None:
    assert cloud.dns_record(ZONE, NAME).records == (OLD,)

    updated = cloud.update_dns_record(ZONE, NAME, (NEW,), expect=(OLD,))

    assert updated.records == (NEW,)
    wait_until(lambda: openstack_cloud.dig(NAME) == [NEW], f"BIND to answer {NEW}", PROPAGATION, 0.5)
    assert cloud.dns_record(ZONE, NAME).records == (NEW,)


def test_a_dns_record_changed_since_the_plan_is_left_alone(
    cloud: Cloud, openstack_cloud: OpenStackCloud, record_on_old: None
) -> None:
    with pytest.raises(
        CloudConflictError, match=rf"DNS record {NAME} changed since it was read: it holds {OLD},"
    ):
        cloud.update_dns_record(ZONE, NAME, (NEW,), expect=("203.0.113.99",))

    record = cloud.dns_record(ZONE, NAME)
    assert (record.records, record.status) == ((OLD,), "ACTIVE")  # no write: nothing pending either
    assert openstack_cloud.dig(NAME) == [OLD]
