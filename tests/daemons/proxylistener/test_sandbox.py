"""proxylistener still registers tools under its unit's sandbox (what of it tests/support/sandbox.py
can apply without systemd: no capability, no new privileges, no memory both writable and executable)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.daemons.proxylistener.test_proxylistener import ORIGINAL_REGISTER
from tests.daemons.regstack import Stack, exchange, systemd_socket
from tests.support.sandbox import bounding_set, confined


def test_a_tool_registers_through_the_systemd_socket_with_the_listener_in_its_sandbox(stack: Stack) -> None:
    handed = systemd_socket()
    try:
        listener = stack.listener(handed=handed, wrapper=confined("proxylistener.service"))
        reply = exchange(listener.port, ORIGINAL_REGISTER + listener.token("mytool").encode() + b"\n")
        pid = listener.process.pid
        assert "NoNewPrivs:\t1" in Path(f"/proc/{pid}/status").read_text()
        assert bounding_set(pid) == 0 or os.geteuid() != 0
    finally:
        handed.close()
    assert reply == b"ok"
    assert stack.client().hgetall("prefix:mytool") == {".*": "http://127.0.0.1:41234"}
