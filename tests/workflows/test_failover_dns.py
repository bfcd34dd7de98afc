"""A failover's DNS step and the Redis roles it leaves, on a two-proxy lab: the lab's Designate
(in its OpenStack API, through openstacksdk), a real DNS server (dnsmasq) answering its records,
and each proxy's Redis restarted from its own redis.conf after the failover.

One lab for the module; each test leaves it consistent, with either proxy active.
"""

from __future__ import annotations

import json
import re
import shlex
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import wait_until
from tests.support.lab import cli, two_proxy_lab
from tests.workflows.test_failover import active, other, resolved, snapshot, store
from toolforgectl.adapters.processes import start_redis_from
from toolforgectl.lab import state as labstate
from toolforgectl.lab.state import ProcessRecord
from toolforgectl.workflows.proxies import redis_address

RUN_ID = re.compile(r"\d{8}T\d{6}Z-failover-[0-9a-f]+")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with two_proxy_lab(tmp_path_factory.mktemp("failover-dns") / "lab") as state:
        yield state


def address(lab: dict[str, Any], proxy: str) -> tuple[str, ...]:
    return (lab["proxies"][proxy]["address"],)


def designate(lab: dict[str, Any]) -> list[str]:
    """What the lab's Designate holds for the public name (its state file, not through the API)."""
    cloud = json.loads((Path(lab["dir"]) / "cloud" / "cloud.json").read_text())
    (record,) = [r for r in cloud["recordsets"] if r["name"] == lab["fleet"]["dns"]["name"]]
    return list(record["records"])


def cloud_control(lab: dict[str, Any], action: str, **body: Any) -> None:
    """A fault for the lab's cloud API, which runs as its own process (lab/cloudapi.py `control`)."""
    clouds = yaml.safe_load((Path(lab["dir"]) / "cloud" / "clouds.yaml").read_text())
    base = clouds["clouds"]["lab"]["auth"]["auth_url"].removesuffix("/v3")
    request = urllib.request.Request(f"{base}/lab/{action}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def test_lab_up_points_the_public_name_at_the_active_proxy(lab: dict[str, Any]) -> None:
    now = active(lab)
    assert designate(lab) == list(address(lab, now))
    assert resolved(lab) == address(lab, now)


def test_a_failover_moves_the_record_and_the_dns_server_answers_the_new_proxy_and_back(
    lab: dict[str, Any],
) -> None:
    start = active(lab)
    there = cli(lab, "failover", "--yes", "--reason", "dns there")
    assert there.returncode == 0, there.stderr
    assert designate(lab) == list(address(lab, other(start)))
    assert resolved(lab) == address(lab, other(start))
    again = cli(lab, "failover", "--to", other(start), "--yes")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    back = cli(lab, "failover", "--yes", "--reason", "dns back")
    assert back.returncode == 0, back.stderr
    assert resolved(lab) == address(lab, start)


@pytest.mark.parametrize("flag", ["--dry-run", "--rehearse"])
def test_a_dry_run_plans_the_dns_change_and_leaves_the_record(lab: dict[str, Any], flag: str) -> None:
    before = snapshot(lab)
    done = cli(lab, "failover", flag, "--reason", "practice")
    assert done.returncode == 0, done.stderr
    planned = next(line for line in done.stderr.splitlines() if "update-dns: planned" in line)
    assert f"holds {address(lab, active(lab))[0]}" in planned
    assert snapshot(lab) == before


def test_a_dns_api_error_mid_failover_is_named_and_the_run_resumes(lab: dict[str, Any]) -> None:
    start = active(lab)
    cloud_control(lab, "fail-next", count=1, status=503, method="PUT", path="/recordsets/")
    try:
        failed = cli(lab, "failover", "--yes", "--reason", "designate fails")
    finally:
        cloud_control(lab, "clear-faults")
    assert failed.returncode == 1, failed.stderr
    assert "step update-dns failed" in failed.stderr
    assert "updating DNS record tools.lab.test." in failed.stderr and "HTTP 503" in failed.stderr
    assert "operator instructions" in failed.stderr and "openstack recordset set" in failed.stderr
    assert resolved(lab) == address(lab, start), "the record was not changed"
    run = RUN_ID.search(failed.stderr)
    assert run is not None
    resumed = cli(lab, "failover", "--resume", run.group(), "--yes", "--reason", "designate is back")
    assert resumed.returncode == 0, resumed.stderr
    assert resolved(lab) == address(lab, other(start))
    assert active(lab) == other(start)


def test_the_command_variant_runs_the_configured_command(lab: dict[str, Any]) -> None:
    config = Path(lab["config"])
    original = config.read_text()
    directory = Path(lab["dir"])
    ran = directory / "dns-command.log"
    # What a site without Designate might run: it rewrites the lab DNS server's records itself.
    hosts, pid = directory / "dns" / "hosts", directory / "dns" / "dnsmasq.pid"
    script = (
        f"echo {{old_address}} {{address}} {{name}} >> {ran} && echo '{{address}} tools.lab.test' > {hosts}"
        f" && kill -HUP $(cat {pid})"
    )
    fleet = yaml.safe_load(original)
    fleet["dns"] = {**fleet["dns"], "backend": "command", "command": f"sh -c {shlex.quote(script)}"}
    config.write_text(yaml.safe_dump(fleet))
    try:
        start = active(lab)
        there = cli(lab, "failover", "--yes", "--reason", "dns by command")
        assert there.returncode == 0, there.stderr
        assert resolved(lab) == address(lab, other(start))
        old_new = f"{address(lab, start)[0]} {address(lab, other(start))[0]}"
        assert ran.read_text() == f"{old_new} tools.lab.test.\n"
        back = cli(lab, "failover", "--yes", "--reason", "dns by command, back")
        assert back.returncode == 0, back.stderr
        assert resolved(lab) == address(lab, start)
        assert len(ran.read_text().splitlines()) == 2
    finally:
        config.write_text(original)


def restart_redis(lab: dict[str, Any], proxy: str) -> None:
    """Stop `proxy`'s Redis and start it again from its own redis.conf, as a reboot would (the
    lab's state then names the new process, so `lab down` stops it)."""
    directory = Path(lab["dir"])
    state = labstate.load(directory)
    assert state is not None
    (record,) = [r for r in state.processes if r.role == "redis" and r.proxy == proxy]
    record.stop()
    conf = Path(lab["proxies"][proxy]["conf_dir"]) / "redis.conf"
    process = start_redis_from(conf, record.host, record.port, Path(record.log))
    state.processes[state.processes.index(record)] = ProcessRecord.of(
        "redis", process, record.marks, proxy=proxy
    )
    state.save()


def test_after_a_failover_a_restarted_redis_keeps_its_new_role(lab: dict[str, Any]) -> None:
    start = active(lab)
    moved = cli(lab, "failover", "--yes", "--reason", "then restart Redis")
    assert moved.returncode == 0, moved.stderr
    new_primary, new_replica = store(lab, other(start)), store(lab, start)
    for proxy in (start, other(start)):
        restart_redis(lab, proxy)
    assert new_primary.replication().is_primary, f"{other(start)}'s Redis came back as a replica"
    replica = new_replica.replication()
    assert not replica.is_primary, f"{start}'s Redis came back as a primary"
    assert replica.primary == redis_address(lab["proxies"][other(start)]["redis"])
    wait_until(lambda: new_replica.replication().link_up, f"{start}'s Redis to link up again")
    assert active(lab) == other(start), "every source agrees after the restarts"
