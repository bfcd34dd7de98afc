"""The fleet's destination rule: what it learns from the fleet config, and what it refuses."""

from __future__ import annotations

import pytest

from toolforgectl.core import config, validate
from toolforgectl.core.destinations import Destinations
from toolforgectl.core.errors import ValidationError

FLEET = """
proxies:
  - {name: p1, address: 172.16.0.10, redis: "redis://172.16.0.10:6380/0"}
  - {name: p2, address: "2001:db8::10"}
proxylistener: {listen: 0.0.0.0, port: 8282, metrics_port: 0, redis: "redis://localhost:6379/0"}
kube2proxy: {metrics_port: 9617}
webservice: {metrics_port: 9619}
dataplane: {https_port: 8443, internal_address: 172.16.0.11, allow_loopback_backends: LOOPBACK}
"""


def rule(loopback: bool = False) -> Destinations:
    return Destinations.of_fleet(config.parse(FLEET.replace("LOOPBACK", str(loopback).lower()), "fleet.yaml"))


def test_the_rule_knows_every_address_and_service_port_the_config_gives_the_proxies() -> None:
    spelled = rule().lua_settings()
    # IPv6 in full, as lua/urlproxy/backend.lua spells what it compares (tests/lua/unit/test_backend.lua).
    # The listener's wildcard 0.0.0.0 names no address; its Redis on localhost names both loopbacks.
    assert spelled["proxy_addresses"] == [
        "0000:0000:0000:0000:0000:0000:0000:0001",
        "127.0.0.1",
        "172.16.0.10",
        "172.16.0.11",
        "2001:0db8:0000:0000:0000:0000:0000:0010",
    ]
    assert spelled["proxy_ports"] == [80, 6379, 6380, 8081, 8282, 8443, 9617, 9619]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://172.16.0.10:8000", "a proxy's own address"),
        ("http://[::ffff:172.16.0.10]:8000", "a proxy's own address"),
        ("http://[2001:db8::10]:8000", "a proxy's own address"),
        ("http://172.16.0.11:9000", "a proxy's own address"),
        ("http://127.0.0.1:8000", "loopback"),
        ("http://127.0.0.1:6380", "a proxy's service"),
        ("http://127.0.0.1:9619", "a proxy's service"),  # webservicemonitor's metrics
    ],
)
def test_refused(url: str, said: str) -> None:
    with pytest.raises(ValidationError, match=said):
        rule().check(validate.backend(url))


def test_loopback_where_tools_run_on_the_proxy_host_except_on_its_service_ports() -> None:
    lab_like = rule(loopback=True)
    assert lab_like.check(validate.backend("http://127.0.0.1:8000")).port == 8000
    assert lab_like.check(validate.backend("http://[::1]:8000")).port == 8000
    with pytest.raises(ValidationError, match="a proxy's service"):
        lab_like.check(validate.backend("http://127.0.0.2:8443"))
    with pytest.raises(ValidationError, match="a proxy's own address"):
        lab_like.check(validate.backend("http://172.16.0.10:8000"))  # not loopback: still the proxy


def test_other_addresses_and_names_pass() -> None:
    assert rule().check(validate.backend("http://10.68.1.5:8443")).port == 8443
    assert rule().check(validate.backend("http://grid-1.tools.example.org:6379")).is_name
