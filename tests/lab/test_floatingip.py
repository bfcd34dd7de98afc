"""The lab's floating IP forwarder, as its own process, follows the association the cloud API holds."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.cloudlab import FLOATING_IP, SERVERS, LabCloud, running_cloud
from toolforgectl.adapters.processes import Process, free_port, spawn
from toolforgectl.core.errors import LabError

CLIENT = "127.0.0.5"  # the clients' own loopback address, which the backends must see


class Backend:
    """A TCP server on host:port that answers each line with its name and the caller's address."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.listener = socket.create_server((host, port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, peer = self.listener.accept()
                threading.Thread(target=self._answer, args=(conn, peer[0]), daemon=True).start()

    def _answer(self, conn: socket.socket, peer: str) -> None:
        with conn, contextlib.suppress(OSError), conn.makefile("rwb") as stream:
            for _ in stream:
                stream.write(f"{self.name} {peer}\n".encode())
                stream.flush()

    def close(self) -> None:
        self.listener.close()


def backends_on_a_common_port(names: dict[str, str]) -> tuple[int, list[Backend]]:
    """One Backend per proxy address, all on one port that is free on the floating IP too."""
    for _ in range(50):
        port = free_port(FLOATING_IP)
        started: list[Backend] = []
        try:
            for name, host in names.items():
                started.append(Backend(name, host, port))
        except OSError:
            for backend in started:
                backend.close()
            continue
        return port, started
    raise LabError("no port free on every address")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabCloud]:
    with running_cloud(tmp_path / "cloud") as lab:
        yield lab


@pytest.fixture
def ports() -> Iterator[list[int]]:
    """Two public ports (as a proxy has 80 and 443), each with a backend on both proxies."""
    found, everything = [], []
    for _ in range(2):
        port, backends = backends_on_a_common_port(SERVERS)
        found.append(port)
        everything += backends
    yield found
    for backend in everything:
        backend.close()


def start_forwarder(lab: LabCloud, ports: list[int], log: Path) -> Process:
    assert lab.state.path is not None
    argv = [sys.executable, "-m", "toolforgectl.lab.floatingip", "--state", str(lab.state.path)]
    argv += ["--address", FLOATING_IP, *(f"--port={port}" for port in ports)]
    return spawn("floatingip", argv, log, FLOATING_IP, ports[-1])


def connect(port: int) -> socket.socket:
    return socket.create_connection((FLOATING_IP, port), timeout=10, source_address=(CLIENT, 0))


def ask(conn: socket.socket) -> str:
    """The backend's answer to one line, or "<closed>" if the connection ended instead."""
    answer = b""
    try:
        conn.sendall(b"who are you?\n")
        while not answer.endswith(b"\n"):
            chunk = conn.recv(100)
            if not chunk:
                break
            answer += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass  # closed before our line arrived: the kernel answers it with a reset
    return answer.decode().strip() if answer.endswith(b"\n") else "<closed>"


def test_new_connections_follow_a_move_while_open_ones_stay(
    lab: LabCloud, ports: list[int], tmp_path: Path
) -> None:
    forwarder = start_forwarder(lab, ports, tmp_path / "floatingip.log")
    cloud = lab.connect()
    try:
        before = connect(ports[0])
        assert ask(before) == f"proxy-01 {CLIENT}"

        cloud.move_floating_ip(FLOATING_IP, "proxy-02", cloud.floating_ip(FLOATING_IP).revision)
        cloud.wait_associated(FLOATING_IP, SERVERS["proxy-02"], timeout=30)

        for port in ports:
            with connect(port) as after:
                assert ask(after) == f"proxy-02 {CLIENT}"
        assert ask(before) == f"proxy-01 {CLIENT}"  # as with DNAT: an open connection keeps its target
        before.close()
    finally:
        cloud.close()
        forwarder.stop()


def test_while_the_router_lags_new_connections_still_reach_the_old_server(
    lab: LabCloud, ports: list[int], tmp_path: Path
) -> None:
    forwarder = start_forwarder(lab, ports, tmp_path / "floatingip.log")
    cloud = lab.connect()
    try:
        lab.state.apply_delay = 3600.0  # a router that never catches up during this test
        moved = cloud.move_floating_ip(FLOATING_IP, "proxy-02", 1)
        assert (moved.fixed_ip, moved.status) == (SERVERS["proxy-02"], "DOWN")

        with connect(ports[0]) as conn:
            assert ask(conn) == f"proxy-01 {CLIENT}"
    finally:
        cloud.close()
        forwarder.stop()


def test_a_floating_ip_associated_with_nothing_closes_new_connections(
    lab: LabCloud, ports: list[int], tmp_path: Path
) -> None:
    forwarder = start_forwarder(lab, ports, tmp_path / "floatingip.log")
    try:
        fip = lab.state.floating_ip(FLOATING_IP)
        assert fip is not None
        lab.state.associate(fip.id, None, None)

        with connect(ports[0]) as conn:
            assert ask(conn) == "<closed>"
    finally:
        forwarder.stop()
