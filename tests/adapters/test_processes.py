"""Starting, finding ports for, and stopping local server processes."""

from __future__ import annotations

import socket

import pytest

from toolforgectl.adapters.processes import free_port
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
