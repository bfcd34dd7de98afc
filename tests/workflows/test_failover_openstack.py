"""failover's `move-floating-ip` step through the playbook runner, against real Keystone, Neutron
and Nova (the slow tier: `make slow`).

The step plans the move (where the floating IP points, at which revision), the operator confirms,
the step moves it (a compare-and-swap) and verifies it holds. The rest of a failover needs the
proxies themselves (tests/workflows/test_failover.py runs it all on the lab), so the playbook here
is that one step (tests/workflows/openstack_playbooks/), run as `failover` would run it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RedisServer
from tests.support.openstack_cloud import before_the_put
from toolforgectl.adapters.processes import start_redis
from toolforgectl.core import config
from toolforgectl.core.models import Attribution
from toolforgectl.core.waiting import wait_until
from toolforgectl.lab.openstack import OpenStackCloud, Proxies
from toolforgectl.workflows.playbook import runner, spec
from toolforgectl.workflows.playbook.report import Report
from toolforgectl.workflows.playbook.spec import Entry

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PLAYBOOKS = Path(__file__).parent / "openstack_playbooks"


class Operator:
    """At the prompt after the plan; `meanwhile` happens before they type yes (another operator)."""

    def __init__(self, meanwhile: Callable[[], None] = lambda: None) -> None:
        self.meanwhile = meanwhile
        self.plan_shown: list[tuple[str, str]] = []  # (status, note) of each step, as shown

    def plan(self, report: Report) -> None:
        # the runner goes on updating the same report: keep what the operator saw
        self.plan_shown = [(step.status, step.note) for step in report.steps]

    def confirm(self, question: str) -> bool:
        self.meanwhile()
        return True

    def step(self, index: int, total: int, entry: Entry, phase: str) -> None:
        pass

    def note(self, line: str) -> None:
        pass


@pytest.fixture
def proxies(openstack_proxies: Proxies) -> Proxies:
    """The session's seeded fleet cloud (tests/support/openstack_session.py)."""
    return openstack_proxies


@pytest.fixture
def admin(openstack_admin: Any) -> Any:
    """The test's own hands on the cloud: another operator, as far as toolforgectl can tell."""
    return openstack_admin


@pytest.fixture
def fleet(
    tmp_path: Path, redis_server: RedisServer, openstack_cloud: OpenStackCloud, proxies: Proxies, admin: Any
) -> Iterator[config.Fleet]:
    """Two proxies named as their servers (each with a Redis, where the run's lock lives), the
    real cloud as `cloud:`, and the floating IP on proxy-01 (put back there by the admin)."""
    second = start_redis(tmp_path / "redis-2")
    (port,) = admin.network.ports(device_id=proxies.servers["proxy-01"])
    admin.network.update_ip(proxies.floating_ip_id, port_id=port.id)
    wait_until(lambda: status(admin, proxies) == "ACTIVE", "the floating IP to be ACTIVE", 60, 0.2)
    try:
        yield config.parse(
            f"proxies:\n"
            f"  - {{name: proxy-01, redis: '{redis_server.url}'}}\n"
            f"  - {{name: proxy-02, redis: 'redis://127.0.0.1:{second.port}/0'}}\n"
            f"cloud: {{name: lab, floating_ip: '{proxies.floating_ip}',"
            f" clouds_yaml: '{openstack_cloud.clouds_yaml}'}}\n"
            f"operations: {{state_dir: '{tmp_path / 'runs'}'}}\n",
            "fleet.yaml",
        )
    finally:
        second.stop()


def move(fleet: config.Fleet, operator: Operator) -> Report:
    """The step's playbook from proxy-01 to proxy-02, confirmed by `operator`."""
    request = runner.Request(
        spec.find("move-floating-ip", PLAYBOOKS),
        {"from": "proxy-01", "to": "proxy-02"},
        Attribution("alice@bastion"),
        interactive=True,
    )
    return runner.run(fleet, request, operator)


def status(admin: Any, proxies: Proxies) -> str:
    return str(admin.network.get_ip(proxies.floating_ip_id).status)


def points_at(admin: Any, proxies: Proxies) -> str | None:
    fip = admin.network.get_ip(proxies.floating_ip_id)
    return str(fip.fixed_ip_address) if fip.fixed_ip_address else None


def test_the_step_plans_moves_and_verifies_the_floating_ip_in_neutron(
    fleet: config.Fleet, admin: Any, proxies: Proxies
) -> None:
    operator = Operator()

    report = move(fleet, operator)

    assert report.error is None, report.error
    assert report.result == "ok"
    ((status, note),) = operator.plan_shown
    old, new = proxies.fixed_ips["proxy-01"], proxies.fixed_ips["proxy-02"]
    assert status == "planned" and f"{old} -> {new} (proxy-02), at revision" in note
    (done,) = report.steps
    assert done.status == "done"
    assert [(c.old, c.new) for c in done.changes] == [(old, new)]
    assert points_at(admin, proxies) == new


def test_a_floating_ip_someone_moved_after_the_plan_stops_the_run_and_stays_theirs(
    fleet: config.Fleet, admin: Any, proxies: Proxies
) -> None:
    # Between the plan and the operator's yes, someone detaches it (Horizon, another failover).
    operator = Operator(lambda: admin.network.update_ip(proxies.floating_ip_id, port_id=None))

    report = move(fleet, operator)

    assert report.result == "rolled back"  # the rollback found nothing of ours to undo
    assert "someone moved it; nothing was changed" in str(report.error)
    assert points_at(admin, proxies) is None  # not moved, and not moved back by a rollback


def test_a_change_between_the_step_s_read_and_its_put_is_refused_by_neutron_and_stops_the_run(
    fleet: config.Fleet, admin: Any, proxies: Proxies, monkeypatch: pytest.MonkeyPatch
) -> None:
    touched: list[int] = []

    def another_operator(_: object) -> None:
        fip = admin.network.update_ip(proxies.floating_ip_id, description="changed just now")
        touched.append(fip.revision_number)

    before_the_put(monkeypatch, another_operator)

    report = move(fleet, Operator())

    assert report.result == "rolled back"  # the rollback found nothing of ours to undo
    assert (
        f"the floating IP changed since it was read: {proxies.floating_ip} was expected at revision"
        in str(report.error)
    )
    fip = admin.network.get_ip(proxies.floating_ip_id)
    assert (fip.fixed_ip_address, fip.revision_number) == (proxies.fixed_ips["proxy-01"], touched[0])
