"""Hostile callers: each test attempts what one rule forbids, and fails if the rule is removed."""

from __future__ import annotations

import socket
import time

import pytest
import redis

from tests.conftest import wait_until
from tests.daemons.regstack import Identd, Stack, exchange, read_all, route_keys
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import tokens
from toolforgectl.core.models import Attribution

VICTIM = "http://127.0.0.1:41234"


def _register(
    port: int, token: str, destination: str = "http://127.0.0.1:41234", source: str = "127.0.0.1"
) -> bytes:
    return exchange(port, f"register\n.*\n{destination}\n{token}\n".encode(), source=source)


def _victim_routed(client: redis.Redis) -> None:
    client.hset("prefix:victim", ".*", VICTIM)


# Identity: a tool can only ever touch prefix:<its own name> ------------------------------------


def test_a_token_claiming_another_tool_is_refused(stack: Stack) -> None:
    listener = stack.listener()
    _victim_routed(stack.client())
    own = listener.token("attacker")
    forged = own.replace(".attacker.", ".victim.")  # the attacker's MAC, the victim's name

    reply = _register(listener.port, forged, "http://127.0.0.1:50000")

    assert reply == b"Refused: token is not valid."
    assert stack.client().hgetall("prefix:victim") == {".*": VICTIM}


def test_a_token_under_another_key_is_refused(stack: Stack) -> None:
    listener = stack.listener()

    reply = _register(listener.port, tokens.mint(b"x" * 32, "victim", 0))

    assert reply == b"Refused: token is not valid."
    assert not stack.client().exists("prefix:victim")


def test_a_rotated_token_stops_working(stack: Stack) -> None:
    listener = stack.listener()
    old = listener.token("mytool")
    RouteStore.from_url(stack.redis_url).rotate_token("mytool", Attribution("test"))

    assert _register(listener.port, old) == b"Refused: token was rotated; fetch the current one."
    assert _register(listener.port, listener.token("mytool", 1)) == b"ok"


# "²" made int() raise deep in the token check: "Internal error." and a traceback. "٠" and "０" (and
# "00") were read as 0: the generation-0 token's MAC also proved these respellings of it.
@pytest.mark.parametrize("generation", ["²", "٠", "０", "00"])
def test_a_generation_in_other_digits_is_a_malformed_token_not_an_internal_error(
    stack: Stack, generation: str
) -> None:
    listener = stack.listener()
    mac = listener.token("mytool").rsplit(".", 1)[1]

    reply = _register(listener.port, f"tf1.mytool.{generation}.{mac}")

    assert reply == b"Refused: token is malformed."
    assert not stack.client().exists("prefix:mytool")
    wait_until(lambda: len(listener.log_entries()) == 1, "the request's log line")
    assert [line for line in listener.log_lines() if "error.type" in line] == [], "no traceback"


def test_token_mode_refuses_a_request_without_the_token_line(stack: Stack) -> None:
    listener = stack.listener(read_timeout=1.0)

    reply = exchange(listener.port, b"register\n.*\nhttp://127.0.0.1:41234\n")

    assert reply == b"Timed out waiting for the token line."
    assert not stack.client().exists("prefix:mytool")


def test_ident_is_not_trusted_from_outside_the_ident_networks(stack: Stack, identd: Identd) -> None:
    # The original trusted any Cloud VPS host's identd: root there could claim any tool.
    listener = stack.listener(identity=["ident"], ident_networks=["10.0.0.0/8"], ident_port=identd.port)
    identd.user = "tools.victim"

    reply = exchange(listener.port, b"register\n.*\nhttp://127.0.0.1:50000\n")

    assert reply == b"Ident is not accepted from 127.0.0.1; send your tool's token line."
    assert identd.queries == []
    assert not stack.client().exists("prefix:victim")


def test_mixed_mode_demands_a_token_from_outside_the_ident_networks(stack: Stack, identd: Identd) -> None:
    listener = stack.listener(
        identity=["token", "ident"], ident_networks=["10.0.0.0/8"], ident_port=identd.port, read_timeout=1.0
    )

    assert exchange(listener.port, b"register\n.*\nhttp://127.0.0.1:41234\n") == (
        b"Timed out waiting for the token line."
    )
    assert _register(listener.port, listener.token("mytool")) == b"ok"


def test_mixed_mode_accepts_three_lines_with_ident_from_the_ident_networks(
    stack: Stack, identd: Identd
) -> None:
    # An original client keeps its socket open after three lines: judged by ident at the deadline.
    listener = stack.listener(
        identity=["token", "ident"], ident_networks=["127.0.0.0/8"], ident_port=identd.port
    )

    assert exchange(listener.port, b"register\n.*\nhttp://127.0.0.1:41234\n") == b"ok"
    assert stack.client().hget("prefix:mytool", ".*") == "http://127.0.0.1:41234"


# Two segments, the second only once the listener holds the connection (it reads at once what is
# there): the listener judged a request as soon as it had three lines, so a token line sent a
# moment later was ignored and identd was believed.
@pytest.mark.parametrize("command", ["register", "unregister"])
def test_mixed_mode_reads_a_token_line_that_arrives_in_a_later_segment(
    stack: Stack, identd: Identd, command: str
) -> None:
    listener = stack.listener(
        identity=["token", "ident"], ident_networks=["127.0.0.0/8"], ident_port=identd.port, read_timeout=5.0
    )
    identd.user = "tools.othertool"
    if command == "unregister":
        stack.client().hset("prefix:mytool", ".*", "http://127.0.0.1:41234")
    lines = "register\n.*\nhttp://127.0.0.1:41234\n" if command == "register" else "unregister\n.*\n"

    with socket.create_connection(("127.0.0.1", listener.port), timeout=15) as sock:
        sock.sendall(lines.encode())
        wait_until(lambda: "proxylistener_connections 1.0" in listener.scrape(), "the listener to hold it")
        sock.sendall(f"{listener.token('mytool')}\n".encode())
        reply = read_all(sock)

    assert reply == b"ok"
    expected = {".*": "http://127.0.0.1:41234"} if command == "register" else {}
    assert stack.client().hgetall("prefix:mytool") == expected
    assert not stack.client().exists("prefix:othertool")
    assert identd.queries == [], "a request with a token is never judged by ident"


def test_mixed_mode_judges_three_lines_by_ident_once_the_client_half_closes(
    stack: Stack, identd: Identd
) -> None:
    # Without a token line the request is complete when nothing more can come: a client that says
    # so by half-closing (ours do) is served at once, not after the read deadline.
    listener = stack.listener(
        identity=["token", "ident"], ident_networks=["127.0.0.0/8"], ident_port=identd.port, read_timeout=30.0
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
        sock.sendall(b"register\n.*\nhttp://127.0.0.1:41234\n")
        sock.shutdown(socket.SHUT_WR)
        reply = read_all(sock)

    assert reply == b"ok"
    assert time.monotonic() - started < 30.0, "served before the read deadline"
    assert stack.client().hget("prefix:mytool", ".*") == "http://127.0.0.1:41234"


def test_an_ident_user_outside_the_project_is_refused(stack: Stack, identd: Identd) -> None:
    listener = stack.listener(identity=["ident"], ident_networks=["127.0.0.0/8"], ident_port=identd.port)
    identd.user = "root"

    assert exchange(listener.port, b"register\n.*\nhttp://127.0.0.1:41234\n") == (
        b"This service available only to tool accounts"
    )
    assert route_keys(stack.client()) == {}


def test_an_ident_answer_about_another_connection_is_refused(stack: Stack, identd: Identd) -> None:
    listener = stack.listener(identity=["ident"], ident_networks=["127.0.0.0/8"], ident_port=identd.port)
    identd.ports_override = "1,2"

    reply = exchange(listener.port, b"register\n.*\nhttp://127.0.0.1:41234\n")

    assert reply == b"Identd authentication failed. Please contact an administrator"
    assert route_keys(stack.client()) == {}


def test_no_identd_answering_fails_promptly(stack: Stack) -> None:
    listener = stack.listener(
        identity=["ident"], ident_networks=["127.0.0.0/8"], ident_port=1, ident_timeout=1.0
    )

    reply = exchange(listener.port, b"register\n.*\nhttp://127.0.0.1:41234\n", timeout=10)

    assert reply == b"Identd authentication failed. Please contact an administrator"


# Destinations: a tool may only route to itself --------------------------------------------------


def test_a_destination_that_is_not_the_caller_is_refused(stack: Stack) -> None:
    listener = stack.listener()

    reply = _register(listener.port, listener.token("mytool"), "http://127.0.0.2:41234")

    assert reply == b"Destination 127.0.0.2 is not your address 127.0.0.1."
    assert not stack.client().exists("prefix:mytool")


def test_the_backend_allow_list_admits_a_listed_network(stack: Stack) -> None:
    listener = stack.listener(backend_networks=["127.0.0.2/32"])

    assert _register(listener.port, listener.token("mytool"), "http://127.0.0.2:41234") == b"ok"
    assert _register(listener.port, listener.token("mytool"), "http://127.0.0.3:41234") != b"ok"


def test_a_privileged_port_is_refused(stack: Stack) -> None:
    listener = stack.listener()

    reply = _register(listener.port, listener.token("mytool"), "http://127.0.0.1:22")

    assert reply == b"Destination port 22 is outside 1024-65535."
    assert not stack.client().exists("prefix:mytool")


# Unregister: only your own backend --------------------------------------------------------------


def test_unregister_from_another_host_leaves_the_route(stack: Stack) -> None:
    listener = stack.listener()
    token = listener.token("mytool")
    assert _register(listener.port, token, "http://127.0.0.2:41234", source="127.0.0.2") == b"ok"

    reply = exchange(listener.port, f"unregister\n.*\n{token}\n".encode(), source="127.0.0.3")

    assert reply == b"The route points at 127.0.0.2, not at your address 127.0.0.3; not removed."
    assert stack.client().hget("prefix:mytool", ".*") == "http://127.0.0.2:41234"
    assert exchange(listener.port, f"unregister\n.*\n{token}\n".encode(), source="127.0.0.2") == b"ok"
    assert not stack.client().exists("prefix:mytool")


# Reserved names ----------------------------------------------------------------------------------


def test_admin_is_reserved_without_a_grant(stack: Stack) -> None:
    listener = stack.listener()
    stack.client().hset("prefix:admin", ".*", VICTIM)

    reply = _register(listener.port, listener.token("admin"), "http://127.0.0.1:50000")

    assert reply == b"The name admin is reserved; ask an administrator for a grant."
    assert stack.client().hgetall("prefix:admin") == {".*": VICTIM}
    unregister = exchange(listener.port, f"unregister\n.*\n{listener.token('admin')}\n".encode())
    assert unregister != b"ok" and stack.client().exists("prefix:admin")


def test_configured_reserved_names_need_a_grant_and_a_grant_admits(stack: Stack) -> None:
    listener = stack.listener(reserved=["www"], granted=["admin"])

    assert _register(listener.port, listener.token("www")) == (
        b"The name www is reserved; ask an administrator for a grant."
    )
    assert _register(listener.port, listener.token("admin")) == b"ok"
    assert not stack.client().exists("prefix:www")


# Route count: one tool cannot make every request of its own cost more ----------------------------


def _register_route(port: int, token: str, route: str) -> bytes:
    return exchange(port, f"register\n{route}\nhttp://127.0.0.1:41234\n{token}\n".encode())


def test_a_registration_past_the_per_tool_route_cap_is_refused(stack: Stack) -> None:
    listener = stack.listener(dataplane={"max_routes_per_tool": 2})
    token = listener.token("greedy")
    assert _register_route(listener.port, token, "^/a") == b"ok"
    assert _register_route(listener.port, token, "^/b") == b"ok"

    reply = _register_route(listener.port, token, "^/c")

    assert reply == (
        b"Refused: tool greedy already has 2 routes, the most one tool may have"
        b" (dataplane.max_routes_per_tool is 2); delete one first."
    )
    assert sorted(stack.client().hgetall("prefix:greedy")) == ["^/a", "^/b"]
    assert _register_route(listener.port, token, "^/a") == b"ok", "re-registering a route it has"
    wait_until(lambda: len(listener.log_entries()) == 4, "a log line per request")
    assert [entry["outcome"] for entry in listener.log_entries()] == ["ok", "ok", "refused", "ok"]
