"""The lab's router for a real Neutron (lab/neutronrouter.py), here against the lab's own cloud
API over HTTP (the same adapter calls; tests/lab/test_openstacklab.py runs it against Neutron):
the relay's target follows the association, by the port Neutron names, not by its fixed IP; and
`lab up --cloud openstack` refusing what it cannot run, before starting anything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.lab.cloudlab import FLOATING_IP, LabCloud, running_cloud
from toolforgectl.adapters.cloud import Cloud
from toolforgectl.lab.cloudstate import forward_target
from toolforgectl.lab.neutronrouter import Router, run

# The proxies' lab addresses: not the fixed IPs the cloud gives their ports (127.0.0.11, .12), as
# Neutron's fixed IPs are not where the lab's proxies answer.
LAB_ADDRESSES = {"proxy-01": "127.0.0.31", "proxy-02": "127.0.0.32"}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabCloud]:
    with running_cloud(tmp_path / "cloud") as lab:
        yield lab


@pytest.fixture
def cloud(lab: LabCloud) -> Iterator[Cloud]:
    connection = lab.connect()
    yield connection
    connection.close()


def router(cloud: Cloud, relayed: Path, reports: list[int]) -> Router:
    return Router(cloud, FLOATING_IP, LAB_ADDRESSES, relayed, lambda: reports.append(1))


def test_the_relay_follows_a_move_to_the_lab_address_of_the_server_whose_port_neutron_names(
    tmp_path: Path, cloud: Cloud
) -> None:
    relayed, reports = tmp_path / "router.json", []
    follower = router(cloud, relayed, reports)

    follower.tick()
    first = forward_target(relayed, FLOATING_IP)
    plan = cloud.plan_move(FLOATING_IP, "proxy-02")
    cloud.move_floating_ip(FLOATING_IP, "proxy-02", plan.floating_ip.revision)
    follower.tick()

    assert (first, forward_target(relayed, FLOATING_IP)) == ("127.0.0.31", "127.0.0.32")
    assert len(reports) == 2  # the status is reported on every tick, after applying


def test_a_floating_ip_on_no_lab_server_s_port_leads_nowhere(
    tmp_path: Path, lab: LabCloud, cloud: Cloud
) -> None:
    relayed = tmp_path / "router.json"
    follower = router(cloud, relayed, [])
    fip = lab.state.floating_ip(FLOATING_IP)
    assert fip is not None
    follower.tick()

    lab.state.associate(fip.id, "a-port-of-another-server", "10.0.0.5")
    follower.tick()
    elsewhere = forward_target(relayed, FLOATING_IP)
    lab.state.associate(fip.id, None, None)
    follower.tick()

    assert (elsewhere, forward_target(relayed, FLOATING_IP)) == (None, None)


def test_while_neutron_cannot_be_read_the_relay_stays_where_it_was(
    tmp_path: Path, lab: LabCloud, cloud: Cloud
) -> None:
    relayed = tmp_path / "router.json"
    follower = router(cloud, relayed, [])
    follower.tick()
    lab.api.stop()
    stopping = threading.Event()
    stopping.set()  # one tick, then return

    run(follower, stopping)  # an unreachable API is reported, not raised

    assert forward_target(relayed, FLOATING_IP) == "127.0.0.31"


def test_lab_up_with_openstack_not_installed_says_what_to_run_and_starts_nothing(tmp_path: Path) -> None:
    env = {"TOOLFORGECTL_OPENSTACK_VENV": str(tmp_path / "no-venv")}
    where = tmp_path / "lab"

    done = run_cli("lab", "up", "--dir", str(where), "--proxies", "2", "--cloud", "openstack", env=env)

    assert done.code == 1
    assert "the OpenStack control plane is not installed: run `bash " in done.stderr
    assert "scripts/install-openstack.sh` once" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not where.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--cloud", "openstack"), "--cloud openstack needs --proxies 2 or more"),
        (("--proxies", "2", "--cloud", "aws"), "the lab's cloud is one of fake, openstack, not 'aws'"),
    ],
)
def test_lab_up_refuses_a_cloud_it_cannot_run(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    where = tmp_path / "lab"

    done = run_cli("lab", "up", "--dir", str(where), *args)

    assert done.code == 2 and message in done.stderr
    assert not where.exists()
