"""proxylistener as a process: the original wire format, token mode, audit, logs, metrics, shutdown."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli, wait_until
from tests.daemons.regstack import Identd, Listener, Stack, exchange, read_all
from toolforgectl.adapters.processes import start_redis

ORIGINAL_REGISTER = b"register\n.*\nhttp://127.0.0.1:41234\n"


def test_original_three_line_client_registers_and_routes_show_reports_it(
    stack: Stack, identd: Identd
) -> None:
    listener = stack.listener(identity=["ident"], ident_networks=["127.0.0.0/8"], ident_port=identd.port)

    reply = exchange(listener.port, ORIGINAL_REGISTER)

    assert reply == b"ok"  # exactly once, no newline: the original sent `okok` on some paths
    shown = run_cli("--redis", stack.redis_url, "routes", "show", "mytool", "--json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["data"]["routes"][0]["backend"] == "http://127.0.0.1:41234"


def test_ident_query_names_the_callers_port_and_the_listener_port(stack: Stack, identd: Identd) -> None:
    listener = stack.listener(identity=["ident"], ident_networks=["127.0.0.0/8"], ident_port=identd.port)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(ORIGINAL_REGISTER)
        assert read_all(sock) == b"ok"
        caller_port = sock.getsockname()[1]

    assert identd.queries == [f"{caller_port},{listener.port}"]


def test_token_client_registers_with_a_fourth_line(stack: Stack) -> None:
    listener = stack.listener()

    reply = exchange(listener.port, ORIGINAL_REGISTER + listener.token("mytool").encode() + b"\n")

    assert reply == b"ok"
    assert stack.client().hgetall("prefix:mytool") == {".*": "http://127.0.0.1:41234"}


def test_register_canonical_also_records_the_canonical_host(stack: Stack) -> None:
    listener = stack.listener(canonical_domain="toolforge.example")
    token = listener.token("mytool").encode()

    assert (
        exchange(listener.port, b"registerCanonical\n.*\nhttp://127.0.0.1:41234\n" + token + b"\n") == b"ok"
    )

    assert stack.client().hgetall("redirect:mytool") == {".*": "mytool.toolforge.example"}
    # Like the route, the redirect bumps the version (so caches see it at once) and is audited.
    assert stack.client().get("toolforgectl:routes:version") == "2"
    history = json.loads(run_cli("--redis", stack.redis_url, "debug", "history", "mytool", "--json").stdout)
    assert [(e["action"], e["backend"]) for e in history["data"]["audit"]] == [
        ("set", "http://127.0.0.1:41234"),
        ("redirect", "mytool.toolforge.example"),
    ]


def test_unregister_removes_route_and_redirect(stack: Stack) -> None:
    listener = stack.listener()
    token = listener.token("mytool").encode()
    exchange(listener.port, b"registerCanonical\n.*\nhttp://127.0.0.1:41234\n" + token + b"\n")

    assert exchange(listener.port, b"unregister\n.*\n" + token + b"\n") == b"ok"

    assert stack.client().exists("prefix:mytool", "redirect:mytool") == 0


def test_unknown_command_gets_fail(stack: Stack) -> None:
    listener = stack.listener()

    assert exchange(listener.port, b"hijack\n.*\n") == b"fail"


def test_accepted_changes_appear_in_debug_history_with_the_peer(stack: Stack) -> None:
    listener = stack.listener()
    exchange(listener.port, ORIGINAL_REGISTER + listener.token("mytool").encode() + b"\n")

    shown = run_cli("--redis", stack.redis_url, "debug", "history", "mytool", "--json")

    assert shown.code == 0, shown.stderr
    audit = json.loads(shown.stdout)["data"]["audit"]
    assert [(a["action"], a["backend"], a["actor"]) for a in audit] == [
        ("set", "http://127.0.0.1:41234", "proxylistener@127.0.0.1")
    ]


def test_each_request_logs_one_structured_line_without_the_token(stack: Stack) -> None:
    listener = stack.listener()
    token = listener.token("mytool")
    exchange(listener.port, ORIGINAL_REGISTER + token.encode() + b"\n")
    exchange(listener.port, b"hijack\n")

    wait_until(lambda: len(listener.log_entries()) == 2, "two log lines")
    first, second = listener.log_entries()
    assert first["log.level"] == "info" and first["log.logger"] == "proxylistener"
    assert first["@timestamp"].endswith("Z") and first["message"] == "register from 127.0.0.1: ok"
    assert first["tool"] == "mytool" and first["command"] == "register" and first["route"] == ".*"
    assert first["destination"] == "http://127.0.0.1:41234" and first["peer"] == "127.0.0.1"
    assert (first["outcome"], second["outcome"]) == ("ok", "fail")
    assert first["identity"] == "token"
    assert token.rsplit(".", 1)[1] not in listener.log.read_text()


def test_a_token_sent_where_it_does_not_belong_is_redacted_from_the_log(stack: Stack) -> None:
    listener = stack.listener()
    token = listener.token("mytool")
    mac = token.rsplit(".", 1)[1]
    # A client that swapped its lines: the token as the route (a valid regex), and as the command.
    swapped = f"register\n{token}\nhttp://127.0.0.1:41234\n{token}\n".encode()
    assert exchange(listener.port, swapped) == b"ok"
    exchange(listener.port, f"{token}\n.*\n".encode())

    wait_until(lambda: len(listener.log_entries()) == 2, "two log lines")
    assert listener.log_entries()[0]["route"] == "tf1.mytool.0.[REDACTED]"
    assert mac not in listener.log.read_text()
    assert stack.client().hget("prefix:mytool", token) == "http://127.0.0.1:41234", "only the log is redacted"


def test_text_logs_are_plain_lines_for_a_person(stack: Stack) -> None:
    listener = stack.listener(args=("--log-format", "text"))
    exchange(listener.port, ORIGINAL_REGISTER + listener.token("mytool").encode() + b"\n")

    line = wait_until(lambda: _line_with(listener.log.read_text(), "register from"), "the request's line")
    assert " INFO proxylistener: register from 127.0.0.1: ok tool=mytool command=register route=.* " in line
    assert not line.startswith("{")


def _line_with(text: str, part: str) -> str | None:
    return next((line for line in text.splitlines() if part in line), None)


def test_metrics_count_requests_by_outcome(stack: Stack) -> None:
    listener = stack.listener()
    exchange(listener.port, ORIGINAL_REGISTER + listener.token("mytool").encode() + b"\n")
    exchange(listener.port, b"hijack\n")

    # The reply goes out before the request is counted, so a scrape may briefly lag the replies.
    wait_until(
        lambda: "proxylistener_request_seconds_count 2.0" in listener.scrape(),
        "both requests counted",
        10,
    )
    text = listener.scrape()
    assert 'proxylistener_requests_total{command="register",outcome="ok"} 1.0' in text
    assert 'proxylistener_requests_total{command="none",outcome="fail"} 1.0' in text


def test_a_health_probe_that_connects_and_closes_is_not_counted_as_a_request(stack: Stack) -> None:
    listener = stack.listener()
    # Starting the listener waited for its port by connecting once: that was the first probe.
    wait_until(lambda: "probes_total 1.0" in listener.scrape(), "the start-up check counted")
    socket.create_connection(("127.0.0.1", listener.port), timeout=10).close()

    wait_until(lambda: "probes_total 2.0" in listener.scrape(), "the health probe counted")
    text = listener.scrape()
    assert "proxylistener_requests_total{" not in text, "no request of any command or outcome"
    assert "proxylistener_request_seconds_count 0.0" in text
    assert listener.log_entries() == [], "and no log line"


def _wait_for_connections(listener: Listener, count: int) -> None:
    """Wait until the listener serves `count` connections (it has accepted them, not only the kernel)."""
    gauge = f"proxylistener_connections {count:.1f}"
    wait_until(lambda: gauge in listener.scrape(), f"{count} connection(s) being served")


def test_sigterm_stops_accepting_but_finishes_the_request_in_flight(stack: Stack) -> None:
    listener = stack.listener(read_timeout=20.0)
    token = listener.token("mytool").encode()
    with socket.create_connection(("127.0.0.1", listener.port), timeout=20) as sock:
        sock.sendall(b"register\n.*\n")
        _wait_for_connections(listener, 1)  # SIGTERM must find this request in flight
        listener.process.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        wait_until(lambda: _refused(listener.port), "the listener to stop accepting", 10)
        sock.sendall(b"http://127.0.0.1:41234\n" + token + b"\n")
        assert read_all(sock) == b"ok"

    assert listener.process.popen.wait(timeout=15) == 0  # type: ignore[union-attr]
    assert stack.client().hget("prefix:mytool", ".*") == "http://127.0.0.1:41234"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_connections_over_the_cap_are_told_to_retry(stack: Stack) -> None:
    listener = stack.listener(max_connections=2, read_timeout=20.0)
    idle = [socket.create_connection(("127.0.0.1", listener.port), timeout=10) for _ in range(2)]
    try:
        _wait_for_connections(listener, 2)  # both are being served: the next one is over the cap
        reply = exchange(listener.port, ORIGINAL_REGISTER)
    finally:
        for sock in idle:
            sock.close()

    assert reply == b"The proxy is busy; try again shortly."


@pytest.mark.parametrize(
    ("active_proxy", "expected"),
    [
        (b"proxy-02", b"This proxy is a standby; register with proxy-02."),
        (None, b"This proxy is a standby; register with proxy-01."),  # no file: the fleet config
        (b"", b"Registration is switched off."),
        (b"\xffproxy-02", b"This proxy is a standby; the active proxy is not known here."),
    ],
    ids=["names a proxy", "missing", "empty", "garbled"],
)
def test_a_standby_names_the_active_proxy_instead_of_crashing(
    stack: Stack, active_proxy: bytes | None, expected: bytes
) -> None:
    replica = start_redis(stack.tmp / "replica", replica_of=("127.0.0.1", stack.redis.process.port))
    try:
        if active_proxy is not None:
            (stack.tmp / "active-proxy").write_bytes(active_proxy)
        listener = stack.listener(
            redis_url=f"redis://127.0.0.1:{replica.port}/0", active_proxy_file=str(stack.tmp / "active-proxy")
        )
        reply = exchange(listener.port, ORIGINAL_REGISTER + listener.token("mytool").encode() + b"\n")
    finally:
        replica.stop()

    assert reply == expected


def test_a_bad_command_line_value_is_one_error_line_and_exit_2() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "proxylistener"), "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "proxylistener: error: command line: port must be a port number (1-65535)"
    ]
