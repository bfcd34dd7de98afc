"""The authorization rules as pure functions (the daemon tests prove them end to end)."""

from __future__ import annotations

import pytest

from tests.conftest import LOOPBACK_TOOLS
from toolforgectl.core import validate
from toolforgectl.core.config import ProxyListener
from toolforgectl.core.errors import RefusedError
from toolforgectl.daemons.proxylistener import authorize
from toolforgectl.daemons.proxylistener.authorize import Policy

POLICY = Policy.from_settings(
    ProxyListener(backend_networks=("127.0.5.0/24",), ident_networks=("127.0.0.0/8",)), LOOPBACK_TOOLS
)


def test_a_dual_stack_listener_sees_ipv4_callers_as_themselves() -> None:
    authorize.check_destination(POLICY, validate.backend("http://127.0.0.1:8000"), "::ffff:127.0.0.1")
    authorize.check_owned(POLICY, "http://127.0.0.1:8000", "::ffff:127.0.0.1")


@pytest.mark.parametrize("destination", ["http://127.0.0.2:8000", "http://[::1]:8000"])
def test_another_host_is_refused(destination: str) -> None:
    with pytest.raises(RefusedError, match="is not your address"):
        authorize.check_destination(POLICY, validate.backend(destination), "127.0.0.1")


@pytest.mark.parametrize("stored", ["http://tools-webgrid-1:4000", "garbage"])
def test_unregister_refuses_a_stored_route_it_cannot_read_as_the_callers(stored: str) -> None:
    # Written by another client (the original's grid routes named hosts): kept, not a crash.
    with pytest.raises(RefusedError, match="not removed"):
        authorize.check_owned(POLICY, stored, "127.0.0.1")


@pytest.mark.parametrize("port", [1, 80, 1023])
def test_privileged_ports_are_refused_even_on_the_callers_address(port: int) -> None:
    with pytest.raises(RefusedError, match="outside 1024-65535"):
        authorize.check_destination(POLICY, validate.backend(f"http://127.0.0.1:{port}"), "127.0.0.1")


def test_the_allow_list_admits_its_network_only() -> None:
    authorize.check_destination(POLICY, validate.backend("http://127.0.5.9:8000"), "127.0.0.1")
    with pytest.raises(RefusedError):
        authorize.check_destination(POLICY, validate.backend("http://127.0.6.9:8000"), "127.0.0.1")


def test_admin_is_always_reserved() -> None:
    with pytest.raises(RefusedError, match="reserved"):
        authorize.check_tool(Policy.from_settings(ProxyListener(reserved=("www",))), "admin")
