"""Starting, finding ports for, and stopping local server processes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from toolforgectl.adapters.processes import (
    LAB_PORTS,
    LAB_PORTS_ENV,
    ephemeral_range,
    free_port,
    lab_ports,
    server_ports,
)
from toolforgectl.core.errors import LabError


def test_a_free_port_in_a_range_is_never_one_that_is_listened_on() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        with socket.create_server(("127.0.0.1", 0)) as released:
            busy, free = taken.getsockname()[1], released.getsockname()[1]
        low, high = sorted((busy, free))
        both = range(low, high + 1, high - low)  # exactly these two ports

        assert {free_port("127.0.0.1", both) for _ in range(20)} == {free}


def test_a_range_with_no_free_port_is_a_lab_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]

        with pytest.raises(LabError, match=f"no free port in {busy}-{busy} on 127.0.0.1"):
            free_port("127.0.0.1", range(busy, busy + 1))


def test_server_ports_leave_out_the_kernels_ephemeral_range(tmp_path: Path) -> None:
    ephemeral = tmp_path / "ip_local_port_range"
    ephemeral.write_text("32768\t60999\n")  # as /proc writes it

    ports = server_ports(1024, 65535, ephemeral)

    assert set(ports) == set(range(1024, 32768)) | set(range(61000, 65536))
    assert len(ports) == len(set(ports))  # each once: every free port as likely as the next


def test_server_ports_are_all_of_them_when_the_range_leaves_none_or_cannot_be_read(tmp_path: Path) -> None:
    ephemeral = tmp_path / "ip_local_port_range"
    ephemeral.write_text("1024 65535\n")
    assert list(server_ports(1024, 65535, ephemeral)) == list(range(1024, 65536))
    ephemeral.write_text("garbled\n")
    assert list(server_ports(2000, 3000, ephemeral)) == list(range(2000, 3001))
    assert list(server_ports(2000, 3000, tmp_path / "missing")) == list(range(2000, 3001))


def test_a_lab_given_its_own_port_range_picks_only_from_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LAB_PORTS_ENV, "24000-24009")  # as each test worker gets its own slice

    assert lab_ports() == (24000, 24009)
    assert {free_port() for _ in range(50)} <= set(range(24000, 24010))


@pytest.mark.parametrize(
    "spelled", ["24000", "24000-", "9-24000", "24010-24000", "24000-70000", "２４０００-24009"]
)
def test_a_port_range_that_is_not_low_high_is_a_lab_error(
    monkeypatch: pytest.MonkeyPatch, spelled: str
) -> None:
    monkeypatch.setenv(LAB_PORTS_ENV, spelled)

    with pytest.raises(LabError, match=f"{LAB_PORTS_ENV}=.* is not LOW-HIGH with ports from 1024 to 65535"):
        free_port()


def test_the_labs_ports_are_below_the_ephemeral_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LAB_PORTS_ENV, raising=False)  # the default range, not a test worker's slice
    # A server's port the kernel could also hand out as a source port: a client retrying it while
    # the server is down (Redis restarted by a test, a killed tool) can connect to itself there,
    # and then holds the port when the server comes back on it.
    found = ephemeral_range()
    assert found is not None
    low, high = found
    ports = {free_port() for _ in range(50)}
    assert all(LAB_PORTS[0] <= port <= LAB_PORTS[1] and not low <= port <= high for port in ports)
    assert len(ports) > 1  # picked at random, not one port handed out again and again
