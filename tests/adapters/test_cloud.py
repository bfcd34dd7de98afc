"""The cloud adapter (real openstacksdk) against the lab's OpenStack API over real HTTP on loopback."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.cloudlab import FLOATING_IP, SERVERS, LabCloud, running_cloud
from toolforgectl.adapters.cloud import Cloud
from toolforgectl.core import config
from toolforgectl.core.errors import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    CloudConflictError,
    CloudError,
    ConfigError,
    NotFoundError,
    TimedOutError,
)

PROXY_01, PROXY_02 = SERVERS["proxy-01"], SERVERS["proxy-02"]


def with_entry(lab: LabCloud, directory: Path, **changes: Any) -> config.Cloud:
    """The lab's settings, with a clouds.yaml whose entry has `changes` (a dict value updates a dict)."""
    doc = json.loads(Path(str(lab.settings.clouds_yaml)).read_text())
    entry = doc["clouds"]["lab"]
    for key, value in changes.items():
        entry[key] = {**entry[key], **value} if isinstance(value, dict) else value
    clouds_yaml = directory / "changed-clouds.yaml"
    clouds_yaml.write_text(json.dumps(doc))
    return dataclasses.replace(lab.settings, clouds_yaml=str(clouds_yaml))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabCloud]:
    with running_cloud(tmp_path / "cloud") as lab:
        yield lab


@pytest.fixture
def cloud(lab: LabCloud) -> Iterator[Cloud]:
    cloud = lab.connect()
    yield cloud
    cloud.close()


def test_finds_the_floating_ip_and_the_port_of_each_server(lab: LabCloud, cloud: Cloud) -> None:
    fip = cloud.floating_ip(FLOATING_IP)
    port = cloud.server_port("proxy-02")

    assert (fip.address, fip.fixed_ip, fip.revision, fip.status) == (FLOATING_IP, PROXY_01, 1, "ACTIVE")
    assert fip.port_id == lab.state.server_named("proxy-01").port_id
    assert port == (lab.state.server_named("proxy-02").port_id, PROXY_02)
    # by id as well as by name, as the fleet's `servers:` may give either
    assert cloud.server_port(lab.state.server_named("proxy-02").id) == port


def test_an_unknown_floating_ip_or_server_is_not_found_and_names_the_cloud(cloud: Cloud) -> None:
    with pytest.raises(NotFoundError, match=r"^cloud lab: no floating IP 127.0.0.99 "):
        cloud.floating_ip("127.0.0.99")
    # Nova's name filter is a regex search: "proxy-0" finds both, and neither is called that
    with pytest.raises(NotFoundError, match=r"^cloud lab: no server 'proxy-0' "):
        cloud.server_port("proxy-0")


def test_a_move_points_the_floating_ip_at_the_other_server_and_bumps_its_revision(
    lab: LabCloud, cloud: Cloud
) -> None:
    plan = cloud.plan_move(FLOATING_IP, "proxy-02")
    assert not plan.done
    assert plan.describe() == f"floating IP {FLOATING_IP}: {PROXY_01} -> {PROXY_02} (proxy-02), at revision 1"

    moved = cloud.move_floating_ip(FLOATING_IP, "proxy-02", plan.floating_ip.revision)

    assert (moved.fixed_ip, moved.revision) == (PROXY_02, 2)
    assert lab.points_at() == PROXY_02
    assert cloud.plan_move(FLOATING_IP, "proxy-02").done
    # the write carried the revision it was decided on
    assert lab.api.calls("PUT", "floatingips") == [("PUT", f"/networking/v2.0/floatingips/{moved.id}", 200)]


def test_a_revision_older_than_the_cloud_s_is_refused_before_any_write(lab: LabCloud, cloud: Cloud) -> None:
    seen = cloud.floating_ip(FLOATING_IP)
    lab.state.touch(FLOATING_IP)  # another operator edits the floating IP meanwhile

    with pytest.raises(CloudConflictError) as raised:
        cloud.move_floating_ip(FLOATING_IP, "proxy-02", seen.revision)

    assert str(raised.value) == (
        f"cloud lab: the floating IP changed since it was read: {FLOATING_IP} was expected at revision 1; "
        f"it is at revision 2, pointing at {PROXY_01}. Nothing was changed: read it again and decide again"
    )
    assert raised.value.exit_code == EXIT_FAILED
    assert lab.points_at() == PROXY_01
    assert lab.api.calls("PUT", "floatingips") == []


def test_a_change_between_the_read_and_the_write_gets_412_from_neutron_and_changes_nothing(
    lab: LabCloud, cloud: Cloud
) -> None:
    # The change lands after the adapter's own check, just before its PUT: only If-Match can catch it.
    lab.api.before_next(lambda: lab.state.touch(FLOATING_IP), method="PUT", path="floatingips")

    with pytest.raises(
        CloudConflictError, match=r"the floating IP changed since it was read: .* revision 2,"
    ):
        cloud.move_floating_ip(FLOATING_IP, "proxy-02", 1)

    assert [status for _, _, status in lab.api.calls("PUT", "floatingips")] == [412]
    assert lab.points_at() == PROXY_01


@pytest.mark.parametrize(
    ("method", "path", "call"),
    [
        ("GET", "floatingips", f"reading floating IP {FLOATING_IP} (Neutron)"),
        ("GET", "servers", "finding server proxy-02 (Nova)"),
        ("GET", "ports", "listing the ports of server proxy-02 (Neutron)"),
        ("PUT", "floatingips", f"moving floating IP {FLOATING_IP} to proxy-02 ({PROXY_02}) (Neutron PUT)"),
    ],
)
def test_a_5xx_mid_move_names_the_call_that_failed_and_changes_nothing(
    lab: LabCloud, cloud: Cloud, method: str, path: str, call: str
) -> None:
    lab.api.fail_next(1, 503, method=method, path=path)

    with pytest.raises(CloudError) as raised:
        cloud.move_floating_ip(FLOATING_IP, "proxy-02", 1)

    assert str(raised.value).startswith(f"cloud lab: {call} failed: HTTP 503 from http://127.0.0.1:")
    assert str(raised.value).endswith(f": the lab cloud fails this {method} as told")
    assert raised.value.exit_code == EXIT_UNAVAILABLE
    assert lab.points_at() == PROXY_01
    assert cloud.floating_ip(FLOATING_IP).revision == 1


def test_a_token_that_expires_mid_move_is_reissued_and_the_write_goes_through(
    lab: LabCloud, cloud: Cloud
) -> None:
    cloud.floating_ip(FLOATING_IP)
    lab.api.before_next(lab.api.expire_tokens, method="PUT", path="floatingips")

    moved = cloud.move_floating_ip(FLOATING_IP, "proxy-02", 1)

    assert (moved.fixed_ip, moved.revision) == (PROXY_02, 2)
    assert [status for _, _, status in lab.api.calls("PUT", "floatingips")] == [401, 200]
    assert lab.api.issued() == 2


def test_short_lived_tokens_are_renewed_before_keystone_would_refuse_them(tmp_path: Path) -> None:
    # A cloud whose tokens last 20 s: keystoneauth renews a token with less than 2 minutes left
    # before using it, so no call is ever refused, however the calls are spread.
    with running_cloud(tmp_path / "cloud", token_ttl=20.0) as lab:
        cloud = lab.connect()
        first = cloud.floating_ip(FLOATING_IP)

        assert cloud.move_floating_ip(FLOATING_IP, "proxy-02", first.revision).fixed_ip == PROXY_02
        assert lab.api.issued() >= 2
        assert [request for request in lab.api.requests if request[2] == 401] == []


def test_wait_associated_returns_once_the_router_applied_the_move(lab: LabCloud, cloud: Cloud) -> None:
    lab.state.apply_delay = 1.5
    moved = cloud.move_floating_ip(FLOATING_IP, "proxy-02", 1)
    assert moved.status == "DOWN"  # Neutron has it; the router does not forward there yet
    lab.api.fail_next(2, 502, method="GET", path="floatingips")  # and the API hiccups meanwhile

    held = cloud.wait_associated(FLOATING_IP, PROXY_02, timeout=30, interval=0.05)

    assert (held.fixed_ip, held.status) == (PROXY_02, "ACTIVE")


def test_wait_associated_times_out_saying_where_the_floating_ip_points(cloud: Cloud) -> None:
    with pytest.raises(TimedOutError) as raised:
        cloud.wait_associated(FLOATING_IP, PROXY_02, timeout=0.3, interval=0.05)

    assert str(raised.value) == (
        f"cloud lab: floating IP {FLOATING_IP} does not point at {PROXY_02} after 0.3s: "
        f"it points at {PROXY_01}, status ACTIVE"
    )


def test_an_unreachable_api_names_the_call_and_the_address(lab: LabCloud) -> None:
    lab.api.stop()
    cloud = lab.connect()

    with pytest.raises(CloudError) as raised:
        cloud.floating_ip(FLOATING_IP)

    assert str(raised.value) == (
        f"cloud lab: reading floating IP {FLOATING_IP} (Neutron) failed: cannot reach "
        f"{lab.api.url}/auth/tokens: [Errno 111] Connection refused"
    )
    assert raised.value.exit_code == EXIT_UNAVAILABLE


def test_an_api_that_hangs_fails_the_call_after_clouds_yaml_s_api_timeout(
    lab: LabCloud, tmp_path: Path
) -> None:
    cloud = Cloud.connect(with_entry(lab, tmp_path, api_timeout=2))
    cloud.floating_ip(FLOATING_IP)
    hung = threading.Event()
    lab.api.before_next(lambda: hung.wait(30), method="GET", path="floatingips")
    started = time.monotonic()
    try:
        with pytest.raises(CloudError) as raised:
            cloud.floating_ip(FLOATING_IP)
    finally:
        hung.set()

    assert str(raised.value) == (
        f"cloud lab: reading floating IP {FLOATING_IP} (Neutron) failed: request to "
        f"http://{lab.api.host}:{lab.api.port}/networking/v2.0/floatingips timed out"
    )
    assert time.monotonic() - started < 25  # 2 s, on a loaded machine: well below the 30 s hang


def test_credentials_keystone_refuses_are_named_as_such(lab: LabCloud, tmp_path: Path) -> None:
    cloud = Cloud.connect(with_entry(lab, tmp_path, auth={"password": "wrong"}))

    with pytest.raises(CloudError, match=r"Keystone refused the credentials of clouds.yaml's 'lab' entry$"):
        cloud.floating_ip(FLOATING_IP)


def test_keystone_failing_to_issue_a_token_is_named(lab: LabCloud) -> None:
    lab.api.fail_next(1, 500, method="POST", path="/auth/tokens")

    with pytest.raises(CloudError, match=r"\(Neutron\) failed: Keystone answered HTTP 500: "):
        lab.connect().floating_ip(FLOATING_IP)


def test_a_missing_clouds_yaml_or_cloud_entry_is_a_config_error(lab: LabCloud, tmp_path: Path) -> None:
    missing = dataclasses.replace(lab.settings, clouds_yaml=str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"^cloud.clouds_yaml: .*/nope.yaml does not exist$"):
        Cloud.connect(missing)

    with pytest.raises(
        ConfigError, match=r"^cloud 'codfw1dev' in .*/clouds.yaml: Cloud codfw1dev was not found"
    ):
        Cloud.connect(dataclasses.replace(lab.settings, name="codfw1dev"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("clouds: 5\n", ""),  # whatever the SDK trips over, it is named as the file's problem
        ("clouds: {lab: {auth_type: password}}\n", "Auth plugin requires parameters which were not given"),
    ],
)
def test_a_clouds_yaml_of_the_wrong_shape_is_a_config_error(
    lab: LabCloud, tmp_path: Path, text: str, problem: str
) -> None:
    clouds_yaml = tmp_path / "broken.yaml"
    clouds_yaml.write_text(text)

    with pytest.raises(ConfigError, match=rf"^cloud 'lab' in {re.escape(str(clouds_yaml))}: {problem}"):
        Cloud.connect(dataclasses.replace(lab.settings, clouds_yaml=str(clouds_yaml)))


def test_the_clouds_yaml_the_fleet_names_wins_over_the_environment_s(
    lab: LabCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = with_entry(lab, tmp_path, auth={"password": "wrong"})
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(elsewhere.clouds_yaml))
    monkeypatch.setenv("OS_PASSWORD", "wrong")

    assert lab.connect().floating_ip(FLOATING_IP).fixed_ip == PROXY_01


def test_the_read_only_view_reads_the_same_cloud_and_has_no_write(cloud: Cloud) -> None:
    reads = cloud.read_only()

    assert reads.floating_ip(FLOATING_IP) == cloud.floating_ip(FLOATING_IP)
    assert not hasattr(reads, "move_floating_ip")
