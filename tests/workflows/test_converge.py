"""`toolforgectl converge` on the two-proxy lab: the data plane pushed over the lab's sshd to each
proxy, `nginx -t` there, reload; the CLI as a process, as an operator runs it.

A config change is made in a copy of the lab's fleet.yaml (maintenance mode: visible in every
answer, and effective only after a reload), so the lab's own config is never changed; every test
converges back to it before it ends.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.lab import toolforgectl as cli
from tests.support.lab import two_proxy_lab
from toolforgectl.adapters.probe import https_get

PROXIES = ("proxy-01", "proxy-02")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with two_proxy_lab(tmp_path_factory.mktemp("converge") / "lab") as state:
        yield state


@pytest.fixture
def maintenance(lab: dict[str, Any], tmp_path: Path) -> Iterator[Path]:
    """A copy of the lab's fleet.yaml that puts the data plane in maintenance; on leaving, every
    proxy is converged back to the lab's own config (and must be)."""
    fleet = yaml.safe_load(Path(lab["config"]).read_text())
    fleet["dataplane"]["maintenance"] = True
    changed = tmp_path / "fleet.yaml"
    changed.write_text(yaml.safe_dump(fleet))
    yield changed
    back = cli(lab["config"], "converge", "--yes", "--reason", "test: back")
    assert back.returncode == 0, back.stderr
    for proxy in PROXIES:
        assert status(lab, proxy) == 200


@pytest.fixture
def broken_host(lab: dict[str, Any]) -> Iterator[Any]:
    """`broken_host(proxy)`: that proxy's `nginx -t` fails (its error log's path is a directory, as
    when a disk or a package went wrong) while its running nginx keeps serving; repaired on leaving."""
    broken: list[Path] = []

    def breaks(proxy: str) -> None:
        log = Path(lab["dir"]) / proxy / "logs" / "error.log"
        log.rename(log.with_suffix(".kept"))
        log.mkdir()
        broken.append(log)

    yield breaks
    for log in broken:
        log.rmdir()
        log.with_suffix(".kept").rename(log)


def status(lab: dict[str, Any], proxy: str) -> int | None:
    """The status of /hello/ through `proxy`'s own address."""
    port = int(lab["fleet"]["dataplane"]["https_port"])
    return https_get(lab["proxies"][proxy]["address"], port, "/hello/").status


def files(lab: dict[str, Any]) -> dict[str, str]:
    """Every proxy's rendered data plane files, as they are on the host."""
    found = {}
    for proxy in PROXIES:
        conf = Path(lab["dir"]) / proxy / "conf"
        found |= {str(f): f.read_text() for f in sorted(conf.rglob("*")) if f.is_file()}
    return found


def recap(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """host -> result, from the recap table on stdout."""
    rows = {}
    for line in done.stdout.splitlines():
        cells = line.split()
        if len(cells) >= 3 and cells[0] in PROXIES and cells[1] == "proxies":
            rows[cells[0]] = cells[2]
    return rows


def test_a_converged_fleet_is_unchanged_and_nothing_is_reloaded(lab: dict[str, Any]) -> None:
    before = files(lab)
    done = cli(lab["config"], "converge", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["data"]["result"] == "nothing to do"
    assert "2 host(s) converged already" in done.stderr
    assert files(lab) == before


def test_a_dry_run_shows_the_diff_and_changes_nothing(lab: dict[str, Any], maintenance: Path) -> None:
    before = files(lab)
    done = cli(maintenance, "converge", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert '-  "maintenance": false' in done.stderr and '+  "maintenance": true' in done.stderr
    assert files(lab) == before
    assert status(lab, "proxy-01") == 200 and status(lab, "proxy-02") == 200


def test_a_host_whose_nginx_check_fails_keeps_serving_its_old_config_and_is_reported(
    lab: dict[str, Any], maintenance: Path, broken_host: Any
) -> None:
    old = (Path(lab["dir"]) / "proxy-02" / "conf" / "urlproxy.json").read_text()
    broken_host("proxy-02")
    done = cli(maintenance, "converge", "--yes", "--reason", "test: one host fails")
    assert done.returncode == 1, done.stderr
    assert recap(done) == {"proxy-01": "changed", "proxy-02": "failed"}
    assert "nginx -t refused the new config" in done.stdout + done.stderr
    assert status(lab, "proxy-01") == 503, "the converged proxy was reloaded into maintenance"
    assert status(lab, "proxy-02") == 200, "the failed one still serves as before"
    assert (Path(lab["dir"]) / "proxy-02" / "conf" / "urlproxy.json").read_text() == old
    assert not list((Path(lab["dir"]) / "proxy-02" / "conf").glob("*.toolforgectl-*")), "nothing left over"


def test_a_failed_batch_stops_the_groups_later_batches(
    lab: dict[str, Any], maintenance: Path, broken_host: Any
) -> None:
    broken_host("proxy-01")  # in the first batch of one
    before = files(lab)
    done = cli(maintenance, "converge", "--yes", "--batch", "1", "--reason", "test: batches")
    assert done.returncode == 1, done.stderr
    assert recap(done) == {"proxy-01": "failed", "proxy-02": "skipped"}
    assert files(lab) == before, "the failed host got its old files back; the skipped one was not touched"
    assert status(lab, "proxy-01") == 200 and status(lab, "proxy-02") == 200


def test_limit_converges_only_the_hosts_named(lab: dict[str, Any], maintenance: Path) -> None:
    done = cli(maintenance, "converge", "--yes", "--limit", "proxy-02", "--reason", "test: limit")
    assert done.returncode == 0, done.stderr
    assert recap(done) == {"proxy-02": "changed"}
    assert status(lab, "proxy-02") == 503 and status(lab, "proxy-01") == 200


def test_an_unknown_group_is_a_usage_error(lab: dict[str, Any]) -> None:
    done = cli(lab["config"], "converge", "--group", "nosuch", "--dry-run")
    assert done.returncode == 2
    assert "no converge group 'nosuch' (known: proxies)" in done.stderr
