"""A registration never points a tool back at the proxy, even from the proxy's own host (issue 10 A.5).

Every caller here is on 127.0.0.1, as a process on the proxy host (or behind a local forwarder)
would be: its own address passes the "your address" rule, so only the destination rule stops it.
"""

from __future__ import annotations

import pytest

from tests.daemons.regstack import Stack, exchange, route_keys


def register(port: int, token: str, destination: str) -> bytes:
    return exchange(port, f"register\n.*\n{destination}\n{token}\n".encode())


@pytest.mark.parametrize(
    ("destination", "said"),
    [
        ("http://169.254.169.254:8080", b"link-local"),
        ("http://[::ffff:169.254.169.254]:8080", b"link-local"),
        ("http://0.0.0.0:8080", b"unspecified"),
        ("http://224.0.0.1:8080", b"multicast"),
        ("http://255.255.255.255:8080", b"broadcast"),
    ],
)
def test_an_address_no_tool_can_have_is_refused(stack: Stack, destination: str, said: bytes) -> None:
    listener = stack.listener()
    before = route_keys(stack.client())
    reply = register(listener.port, listener.token("mytool"), destination)
    assert reply.startswith(b"Refused: ") and said in reply, reply
    assert route_keys(stack.client()) == before


def test_the_proxys_own_services_are_refused_on_the_callers_own_address(stack: Stack) -> None:
    listener = stack.listener()
    before = route_keys(stack.client())
    services = {
        "its Redis": stack.redis.process.port,
        "proxylistener itself": listener.port,
        "proxylistener's metrics": listener.metrics_port,
        "nginx's internal port": 8081,
    }
    for what, port in services.items():
        reply = register(listener.port, listener.token("mytool"), f"http://127.0.0.1:{port}")
        assert b"a proxy's service" in reply, (what, reply)
    assert route_keys(stack.client()) == before
    assert register(listener.port, listener.token("mytool"), "http://127.0.0.1:41234") == b"ok"


def test_loopback_is_refused_where_the_fleet_does_not_run_tools_on_the_proxy(stack: Stack) -> None:
    listener = stack.listener(dataplane={"allow_loopback_backends": False})
    before = route_keys(stack.client())
    reply = register(listener.port, listener.token("mytool"), "http://127.0.0.1:41234")
    assert b"loopback" in reply, reply
    assert route_keys(stack.client()) == before


def test_a_host_name_is_refused_even_if_it_names_the_caller(stack: Stack) -> None:
    listener = stack.listener()
    reply = register(listener.port, listener.token("mytool"), "http://grid-1205.tools.example.org:41234")
    assert (
        reply
        == b"Destination grid-1205.tools.example.org is a host name; register your IP address 127.0.0.1."
    )
    assert not stack.client().exists("prefix:mytool")
