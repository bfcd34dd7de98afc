"""Malformed and hostile input: a clear reply or a timely close; the daemon serves on; no route changes."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable

import pytest

from tests.conftest import wait_until
from tests.daemons.regstack import Listener, Stack, exchange, read_all, route_keys

READ_TIMEOUT = 1.0


def _no_newline(sock: socket.socket) -> None:
    sock.sendall(b"register")
    sock.shutdown(socket.SHUT_WR)


def _no_newline_held_open(sock: socket.socket) -> None:
    sock.sendall(b"register")


def _megabyte_line(sock: socket.socket) -> None:
    # The listener may stop reading once it has refused; the reply is what matters.
    with contextlib.suppress(OSError):
        sock.sendall(b"register\n" + b"A" * (1 << 20) + b"\n")


def _binary_garbage(sock: socket.socket) -> None:
    sock.sendall(bytes(range(256)) * 4 + b"\n")


def _binary_command(sock: socket.socket) -> None:
    sock.sendall(b"\x00\x01\x02register\x7f\n.*\n")


def _invalid_utf8_command(sock: socket.socket) -> None:
    sock.sendall(b"\xff\xfe\n.*\n")


def _too_many_lines(sock: socket.socket) -> None:
    sock.sendall(b"register\n" * 20)


def _hostile_route(sock: socket.socket) -> None:
    sock.sendall(b"register\n(unclosed\nhttp://127.0.0.1:41234\ntoken\n")


def _overflowing_route(sock: socket.socket) -> None:
    sock.sendall(b"register\na{4294967296}\nhttp://127.0.0.1:41234\ntoken\n")


def _slow_client(sock: socket.socket) -> None:
    # One byte at a time, well inside any per-read timeout, never finishing: only a whole-request
    # deadline stops this from holding a connection slot forever.
    for byte in b"register\n.*\nhttp://127.0.0.1:4":
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(0.1)


CASES: dict[str, tuple[Callable[[socket.socket], None], bytes]] = {
    "no newline, then half-close": (_no_newline, b"Request ended before the command line."),
    "no newline, held open": (_no_newline_held_open, b"Timed out waiting for the command line."),
    "1 MB line": (_megabyte_line, b"Request line is longer than 1024 bytes."),
    "binary garbage": (_binary_garbage, b"Request has more than 4 lines."),
    "binary command": (_binary_command, b"fail"),
    "invalid UTF-8": (_invalid_utf8_command, b"Request is not UTF-8 text."),
    "too many lines": (_too_many_lines, b"Request has more than 4 lines."),
    "route that is no regex": (
        _hostile_route,
        b"Refused: route '(unclosed' is not a regex nginx can use (PCRE: ",
    ),
    "route that overflows the regex parser": (
        _overflowing_route,
        b"Refused: route 'a{4294967296}' is not a regex nginx can use (PCRE: ",
    ),
    "slow client": (_slow_client, b"Timed out waiting for the route line."),
}


@pytest.fixture
def listener(stack: Stack) -> Listener:
    return stack.listener(read_timeout=READ_TIMEOUT)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_malformed_request_gets_a_clear_reply_and_changes_nothing(
    stack: Stack, listener: Listener, case: str
) -> None:
    send, expected = CASES[case]
    before = route_keys(stack.client())
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", listener.port), timeout=15) as sock:
        send(sock)
        reply = read_all(sock)

    assert reply.startswith(expected)
    assert time.monotonic() - started < READ_TIMEOUT + 5  # a deadline, not a hang
    assert route_keys(stack.client()) == before
    _still_serving(stack, listener)


def test_connection_reset_mid_request_leaves_the_daemon_serving(stack: Stack, listener: Listener) -> None:
    sock = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
    sock.sendall(b"register\n.*\n")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # SO_LINGER 0: the kernel sends RST instead of FIN

    _still_serving(stack, listener)
    assert stack.client().hgetall("prefix:mytool") == {".*": "http://127.0.0.1:41234"}


def test_one_host_holding_many_idle_connections_does_not_lock_out_another(stack: Stack) -> None:
    # The red-team reproduction: ~600 idle connections from one address filled the overall cap
    # (512) and every other caller was told "busy"; the listener logged ~290 lines a second.
    flood, per_source = 600, 16
    listener = stack.listener(read_timeout=60.0, max_connections=512, max_connections_per_source=per_source)
    started = time.monotonic()
    idle = [_connect_from("127.0.0.2", listener.port) for _ in range(flood)]
    refused = f'requests_total{{command="none",outcome="busy_source"}} {flood - per_source}.0'
    try:
        wait_until(lambda: refused in listener.scrape(), "every connection over the cap refused")
        _still_serving(stack, listener)
        assert read_all(idle[-1]) == b"Too many connections from 127.0.0.2; try again shortly."
    finally:
        for sock in idle:
            sock.close()

    busy = [entry for entry in listener.log_entries() if entry["outcome"].startswith("busy")]
    assert busy and {entry["source"] for entry in busy} == {"127.0.0.2"}
    # One line per source per 10 s, however many refusals: the whole flood took a few seconds.
    assert len(busy) <= 1 + (time.monotonic() - started) // 10


def _connect_from(source: str, port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0))


def _still_serving(stack: Stack, listener: Listener) -> None:
    token = listener.token("mytool").encode()
    assert exchange(listener.port, b"register\n.*\nhttp://127.0.0.1:41234\n" + token + b"\n") == b"ok"
    assert exchange(listener.port, b"unregister\n.*\n" + token + b"\n") == b"ok"
    assert exchange(listener.port, b"register\n.*\nhttp://127.0.0.1:41234\n" + token + b"\n") == b"ok"
