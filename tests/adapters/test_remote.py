"""The remote adapter against a real sshd on loopback: per-host results, files, dry runs, host keys."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolforgectl.adapters.processes import free_port
from toolforgectl.adapters.remote import Remote, failed
from toolforgectl.core.config.remote import Remote as Settings
from toolforgectl.core.config.remote import SshHost
from toolforgectl.core.errors import RemoteError
from toolforgectl.lab import sshd

ADDRESSES = ("127.0.0.21", "127.0.0.22")


@dataclasses.dataclass(frozen=True)
class Hosts:
    settings: Settings
    first: SshHost
    second: SshHost
    down: SshHost  # an address where no sshd answers


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    port = free_port(ADDRESSES[0])
    lab, process = sshd.start(tmp_path_factory.mktemp("sshd"), ADDRESSES, port)
    settings = Settings(**lab.remote_section(), timeout=20.0, connect_timeout=5.0)  # type: ignore[arg-type]
    try:
        yield Hosts(
            settings,
            SshHost("first", ADDRESSES[0], port),
            SshHost("second", ADDRESSES[1], port),
            SshHost("down", "127.0.0.23", port),
        )
    finally:
        process.stop()


def test_a_command_runs_on_each_host_and_each_reports_its_own_output(hosts: Hosts) -> None:
    with Remote(hosts.settings) as remote:
        results = remote.run([hosts.first, hosts.second], "echo $SSH_CONNECTION", write=False)
    assert [r.host for r in results] == ["first", "second"]
    assert [r.ok for r in results] == [True, True]
    # SSH_CONNECTION is "client-ip client-port server-ip server-port": each ran where it was sent.
    assert [r.stdout.split()[2] for r in results] == list(ADDRESSES)


def test_a_host_that_fails_is_reported_and_does_not_stop_the_others(hosts: Hosts) -> None:
    with Remote(hosts.settings) as remote:
        results = remote.run([hosts.down, hosts.first], "hostname", write=False)
        failing = remote.run([hosts.first], "echo no such thing >&2; exit 3", write=False)
    assert results[0].status == "failed" and results[0].exit_code is None
    assert "127.0.0.23" in results[0].error or "refused" in results[0].error.lower()
    assert results[1].ok and results[1].stdout.strip()
    assert failing[0].exit_code == 3
    assert failing[0].error == "exit 3: no such thing"
    assert failed(results + failing) == [results[0], failing[0]]


def test_halt_on_failure_skips_the_batches_after_a_failed_one(hosts: Hosts, tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    with Remote(hosts.settings) as remote:
        results = remote.run(
            [hosts.down, hosts.first], f"touch {mark}", write=True, batch=1, halt_on_failure=True
        )
    assert [r.status for r in results] == ["failed", "skipped"]
    assert not mark.exists()


def test_a_command_past_its_timeout_fails_and_the_host_stays_usable(hosts: Hosts) -> None:
    with Remote(hosts.settings) as remote:
        slow = remote.run([hosts.first], "sleep 60", write=False, timeout=1)
        after = remote.run([hosts.first], "echo still here", write=False)
    assert slow[0].status == "failed"
    assert slow[0].error == "timed out after 1 s"
    assert after[0].ok and after[0].stdout == "still here\n"


def test_files_are_written_whole_and_read_back(hosts: Hosts, tmp_path: Path) -> None:
    target = tmp_path / "etc" / "active-proxy"
    target.parent.mkdir()
    with Remote(hosts.settings) as remote:
        assert remote.read_file(hosts.first, str(target)) is None
        assert remote.write_file(hosts.first, str(target), "proxy-02", mode=0o644).ok
        assert remote.read_file(hosts.second, str(target)) == "proxy-02"  # one machine, two "hosts"
    assert target.read_text() == "proxy-02"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["active-proxy"]  # no temporary left


def test_a_rendered_config_sized_file_is_written_within_the_command_timeout(
    hosts: Hosts, tmp_path: Path
) -> None:
    # 100 kB, as a proxy's data plane is: input once went one byte per 10 ms (1,000 s here, past
    # the 20 s timeout); converge and deploy send whole configs this way.
    text = "".join(f"line {n} of a rendered nginx.conf\n" for n in range(3000))
    target = tmp_path / "nginx.conf"
    with Remote(hosts.settings) as remote:
        written = remote.write_file(hosts.first, str(target), text)
    assert written.ok, written.error
    assert target.read_text() == text


def test_a_read_that_fails_for_another_reason_than_absence_is_an_error(hosts: Hosts, tmp_path: Path) -> None:
    with Remote(hosts.settings) as remote, pytest.raises(RemoteError, match=r"^first: cannot read .*"):
        remote.read_file(hosts.first, str(tmp_path))  # a directory: cat fails


def test_a_dry_run_runs_reads_and_only_reports_writes(hosts: Hosts, tmp_path: Path) -> None:
    target = tmp_path / "hiera.yaml"
    target.write_text("before")
    with Remote(hosts.settings, dry_run=True) as remote:
        write = remote.write_file(hosts.first, str(target), "after")
        command = remote.run([hosts.first, hosts.second], f"rm {target}", write=True)
        read = remote.read_file(hosts.first, str(target))
    assert write.status == "planned"
    assert [r.status for r in command] == ["planned", "planned"]
    assert read == "before"
    assert target.read_text() == "before"


def test_a_host_key_that_is_not_recorded_is_refused(hosts: Hosts, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    settings = dataclasses.replace(hosts.settings, known_hosts=str(empty))
    with Remote(settings) as remote:
        [result] = remote.run([hosts.first], "hostname", write=False)
    assert result.status == "failed"
    assert "is not in" in result.error and "accept_new_host_keys" in result.error


def test_a_new_host_key_is_recorded_when_the_fleet_accepts_new_hosts(hosts: Hosts, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    settings = dataclasses.replace(hosts.settings, known_hosts=str(known), accept_new_host_keys=True)
    with Remote(settings) as remote:
        assert remote.run([hosts.first], "true", write=False)[0].ok
    assert known.read_text().startswith(f"[{ADDRESSES[0]}]:{hosts.first.port} ssh-ed25519 ")
    strict = dataclasses.replace(settings, accept_new_host_keys=False)
    with Remote(strict) as remote:  # recorded now, so a strict client accepts it
        assert remote.run([hosts.first], "true", write=False)[0].ok


def test_a_changed_host_key_is_refused_even_when_new_hosts_are_accepted(hosts: Hosts, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[{ADDRESSES[0]}]:{hosts.first.port} {kind} {key}\n")
    settings = dataclasses.replace(hosts.settings, known_hosts=str(known), accept_new_host_keys=True)
    with Remote(settings) as remote:
        [result] = remote.run([hosts.first], "touch /nonexistent-should-not-run", write=True)
    assert result.status == "failed"
    assert result.error.startswith("host key changed")
    assert f"ssh-keygen -f {known} -R '[{ADDRESSES[0]}]:{hosts.first.port}'" in result.error
    assert known.read_text().count("\n") == 1  # nothing recorded over the old key
