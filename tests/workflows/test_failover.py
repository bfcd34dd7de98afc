"""`toolforgectl failover` on the two-proxy lab: real nginx, Redis, proxylisteners, kube2proxy, an
sshd, the lab's OpenStack API and its floating IP; the CLI as a process, as an operator runs it.

One lab for the module (it takes seconds to start); each test leaves it consistent, with either
proxy active, and asks the fleet which one is before it starts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import wait_until
from tests.support.lab import audit_steps, cli, two_proxy_lab
from tests.support.traffic import RegistrationLoad, RequestLoad
from toolforgectl.adapters import dns
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import tokens
from toolforgectl.core.config.dns import parse_resolver

PROXIES = ("proxy-01", "proxy-02")
STEPS = (
    "move-floating-ip",
    "switch-redis-primary",
    "flip-active-proxy-files",
    "set-hiera-active-proxy",
    "repoint-other-replicas",
    "update-dns",
    "converge-hosts",
    "verify-through-floating-ip",
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with two_proxy_lab(tmp_path_factory.mktemp("failover") / "lab") as state:
        yield state


def active(lab: dict[str, Any]) -> str:
    """The active proxy when every source agrees (the test fails when they do not)."""
    shown = cli(lab, "active-proxy", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    return str(json.loads(shown.stdout)["data"]["active"])


def other(name: str) -> str:
    return PROXIES[1 - PROXIES.index(name)]


def store(lab: dict[str, Any], proxy: str) -> RouteStore:
    return RouteStore.from_url(lab["proxies"][proxy]["redis"])


def resolved(lab: dict[str, Any]) -> tuple[str, ...]:
    """What the lab's DNS server (dnsmasq, fed by the lab's Designate) answers for the public name."""
    section = lab["fleet"]["dns"]
    return dns.ask(section["name"], parse_resolver(section["resolvers"][0])).addresses


def snapshot(lab: dict[str, Any]) -> dict[str, Any]:
    """Everything a failover changes: every Redis's keys and role, hiera, the files, the cloud, DNS."""
    directory = Path(lab["dir"])
    files = sorted(directory.glob("*/active-proxy"))
    redis = {}
    for proxy in PROXIES:
        s = store(lab, proxy)
        redis[proxy] = {"role": s.replication().role, "routes": {t: s.routes(t) for t in s.tools()}}
    cloud = json.loads((directory / "cloud" / "cloud.json").read_text())
    return {
        "redis": redis,
        "hiera": (directory / "hiera.yaml").read_text(),
        "files": {str(f): f.read_text() for f in files},
        "floating_ips": cloud.get("floating_ips", cloud),
        "dns": {"designate": cloud["recordsets"], "resolved": resolved(lab)},
    }


def load_tokens(lab: dict[str, Any], count: int) -> dict[str, str]:
    """Tokens of `count` tools of their own (each may hold only so many routes)."""
    key = tokens.load_key(Path(lab["fleet"]["proxylistener"]["token_key_file"]))
    return {f"load{n:02d}": tokens.mint(key, f"load{n:02d}", 0) for n in range(count)}


def https_port(lab: dict[str, Any]) -> int:
    return int(lab["fleet"]["dataplane"]["https_port"])


def test_failover_and_back_under_load_loses_no_request_and_no_registration(lab: dict[str, Any]) -> None:
    grid_file = Path(lab["dir"]) / "grid" / "active-proxy"
    requests = RequestLoad("127.0.0.10", https_port(lab), ("/hello/", "/echo/"), rate=30)
    addresses = {proxy["name"]: proxy["address"] for proxy in lab["fleet"]["proxies"]}
    registrations = RegistrationLoad(
        grid_file,
        int(lab["fleet"]["proxylistener"]["port"]),
        load_tokens(lab, 40),
        rate=5,
        resolve=lambda name: addresses.get(name, name),
    )
    with requests, registrations:
        wait_until(lambda: len(registrations.report.acknowledged) >= 5, "registrations to flow")
        start = active(lab)
        there = cli(lab, "failover", "--yes", "--reason", "test: there")
        assert there.returncode == 0, there.stderr
        assert active(lab) == other(start)
        assert resolved(lab) == (lab["proxies"][other(start)]["address"],), "DNS names the new proxy"
        back = cli(lab, "failover", "--yes", "--reason", "test: back")
        assert back.returncode == 0, back.stderr
        assert resolved(lab) == (lab["proxies"][start]["address"],)
        wait_until(lambda: len(registrations.report.acknowledged) >= 15, "registrations after the failovers")
    seen, registered = requests.report, registrations.report
    assert seen.failures == [], f"{seen.failed} of {seen.sent} requests failed"
    assert registered.failures == []
    for proxy in PROXIES:  # every ok-acknowledged route, on both Redis once replication caught up
        wait_until(lambda p=proxy: not registered.missing(store(lab, p).routes), f"every route on {proxy}")
    assert active(lab) == start
    print(f"requests {seen.sent}, gap {seen.longest_gap:.3f}s; registered {len(registered.acknowledged)}")


def test_failing_over_to_the_active_proxy_changes_nothing(lab: dict[str, Any]) -> None:
    before = snapshot(lab)
    done = cli(lab, "failover", "--to", active(lab), "--yes")
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stderr
    assert snapshot(lab) == before


@pytest.mark.parametrize("flag", ["--dry-run", "--rehearse"])
def test_a_dry_run_and_a_rehearsal_change_nothing(lab: dict[str, Any], flag: str) -> None:
    before = snapshot(lab)
    done = cli(lab, "failover", flag, "--reason", "practice")
    assert done.returncode == 0, done.stderr
    assert "move-floating-ip" in done.stderr and "planned" in done.stderr
    assert snapshot(lab) == before


def test_without_a_terminal_and_without_yes_it_refuses(lab: dict[str, Any]) -> None:
    before = snapshot(lab)
    done = cli(lab, "failover", "--reason", "no yes")
    assert done.returncode == 2, done.stderr
    assert snapshot(lab) == before


def test_a_split_brain_is_refused_and_active_proxy_set_repairs_it(lab: dict[str, Any]) -> None:
    now = active(lab)
    stray = Path(lab["dir"]) / other(now) / "active-proxy"
    stray.write_text(other(now))  # one host believes the other proxy is active
    before = snapshot(lab)
    refused = cli(lab, "failover", "--yes", "--reason", "should not run")
    assert refused.returncode == 1
    assert "split brain" in refused.stderr and f"{other(now)}:{stray} names {other(now)}" in refused.stderr
    assert snapshot(lab) == before
    shown = cli(lab, "active-proxy", "show")
    assert shown.returncode == 1
    repaired = cli(lab, "active-proxy", "set", now, "--yes", "--reason", "repair split brain")
    assert repaired.returncode == 0, repaired.stderr
    assert stray.read_text() == now
    assert active(lab) == now


def test_two_failovers_at_once_one_is_refused_by_the_lock_naming_the_holder(lab: dict[str, Any]) -> None:
    start = active(lab)
    argv = [sys.executable, "-m", "toolforgectl", "--config", lab["config"], "failover", "--yes"]
    env = {**os.environ, "TOOLFORGECTL_CONFIG": "/nonexistent"}
    runs = [
        subprocess.Popen([*argv, "--reason", f"race {n}"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=env)
        for n in range(2)
    ]  # fmt: skip
    results = [(run.wait(timeout=300), run.communicate()[1]) for run in runs]
    codes = sorted(code for code, _ in results)
    held = [err for code, err in results if code == 1]
    assert codes in ([0, 1], [0, 0]), results
    if codes == [0, 1]:  # the usual case: one held the lock while the other asked for it
        assert "is held by" in held[0] and " pid " in held[0], held[0]
        assert active(lab) == other(start)
    else:  # the second started after the first had finished: it failed over back
        assert active(lab) == start


@pytest.mark.parametrize("step", STEPS)
def test_a_run_killed_after_a_step_resumes_and_the_fleet_ends_consistent(
    lab: dict[str, Any], step: str
) -> None:
    start = active(lab)
    runs = Path(lab["dir"]) / "runs"
    before = set(runs.glob("*.jsonl")) if runs.exists() else set()
    argv = [
        sys.executable,
        "-m",
        "toolforgectl",
        "--config",
        lab["config"],
        "failover",
        "--yes",
        "--reason",
        "kill",
    ]
    env = {**os.environ, "TOOLFORGECTL_CONFIG": "/nonexistent"}
    run = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        audit = wait_until(lambda: next(iter(set(runs.glob("*.jsonl")) - before), None), "the run's audit")
        wait_until(lambda: step in audit_steps(audit) or run.poll() is not None, f"step {step} to finish")
        run.send_signal(signal.SIGKILL)
    finally:
        run.wait(timeout=60)
    resumed = cli(lab, "failover", "--resume", audit.stem, "--yes", "--reason", "kill")
    assert resumed.returncode == 0, resumed.stderr
    assert active(lab) == other(start), "every source names the new proxy"
    assert store(lab, other(start)).routes("hello"), "the routes are on the new primary"


def test_a_temporary_failover_moves_only_the_floating_ip_and_proxy_list_shows_it(lab: dict[str, Any]) -> None:
    start = active(lab)
    before = snapshot(lab)
    moved = cli(lab, "failover", "--temporary", "--yes", "--reason", "reboot")
    assert moved.returncode == 0, moved.stderr
    after = snapshot(lab)
    assert after["redis"] == before["redis"] and after["hiera"] == before["hiera"]
    assert after["files"] == before["files"] and after["dns"] == before["dns"]
    assert after["floating_ips"][0]["fixed_ip"] == lab["proxies"][other(start)]["address"]
    listed = cli(lab, "proxy", "list", "--json")
    rows = {row["name"]: row for row in json.loads(listed.stdout)["data"]["proxies"]}
    assert rows[other(start)]["floating_ip"] == "here" and rows[start]["floating_ip"] == ""
    shown = cli(lab, "active-proxy", "show")
    assert (
        shown.returncode == 1 and f"the floating IP points at {other(start)}" in shown.stdout + shown.stderr
    )
    back = cli(lab, "failover", "--temporary", "--to", start, "--yes", "--reason", "rebooted")
    assert back.returncode == 0, back.stderr
    assert snapshot(lab)["floating_ips"][0]["fixed_ip"] == lab["proxies"][start]["address"]
    assert active(lab) == start


def test_converge_runs_each_groups_command_and_a_failed_host_is_resumed(lab: dict[str, Any]) -> None:
    config = Path(lab["config"])
    original = config.read_text()
    marker = Path(lab["dir"]) / "converged"
    fleet = yaml.safe_load(original)
    fleet["remote"]["converge"] = {"grid": f"test -e {marker}.ok && echo ran >> {marker}"}
    config.write_text(yaml.safe_dump(fleet))
    try:
        start = active(lab)
        failing = cli(lab, "failover", "--yes", "--reason", "converge fails")
        assert failing.returncode == 1
        assert "converge-hosts" in failing.stderr and "operator instructions" in failing.stderr
        assert not marker.exists()
        run = re.search(r"\d{8}T\d{6}Z-failover-[0-9a-f]+", failing.stderr).group()  # type: ignore[union-attr]
        Path(f"{marker}.ok").touch()  # the host is fixed
        resumed = cli(lab, "failover", "--resume", run, "--yes", "--reason", "converge fails")
        assert resumed.returncode == 0, resumed.stderr
        assert marker.read_text() == "ran\n", "the group's command ran once it could"
        assert active(lab) == other(start)
    finally:
        config.write_text(original)
