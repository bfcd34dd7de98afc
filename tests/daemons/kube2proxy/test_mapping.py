"""Which route a Service asks for, and how kube2proxy's settings are read."""

from __future__ import annotations

import pytest

from toolforgectl.adapters.kube import Service, ServicePort, service_from
from toolforgectl.core import config, validate
from toolforgectl.core.config import Kube2proxy
from toolforgectl.core.destinations import Destinations
from toolforgectl.core.errors import ConfigError
from toolforgectl.daemons.kube2proxy.mapping import Route, ServiceMapper, Skip

HTTP = (ServicePort("http", 8000),)


def mapped(service: Service, **settings: object) -> Route | Skip:
    return ServiceMapper(Kube2proxy(**settings)).route_for(service)  # type: ignore[arg-type]


def test_the_original_layout_namespace_equals_tool_is_one_setting_away() -> None:
    found = mapped(Service("dplbot", "dplbot", "10.96.0.5", HTTP), tool_namespace="{tool}")
    assert found == Route("dplbot/dplbot/.*", "dplbot", ".*", validate.backend("http://10.96.0.5:8000"))


def test_the_path_label_gives_a_prefixed_route_and_the_original_member_form() -> None:
    labels = {"toollabs-proxy-path": "api"}
    found = mapped(Service("tool-a", "a", "10.96.0.5", HTTP, labels))
    assert found == Route("tool-a/a/api.*", "a", "/api.*", validate.backend("http://10.96.0.5:8000"))


def test_the_named_port_wins_over_position_and_a_configured_name_is_honoured() -> None:
    ports = (ServicePort("web", 9000), ServicePort("http", 8000), ServicePort("admin", 7000))
    assert isinstance(found := mapped(Service("tool-a", "a", "10.96.0.5", ports)), Route)
    assert found.backend.url == "http://10.96.0.5:8000"
    assert isinstance(found := mapped(Service("tool-a", "a", "10.96.0.5", ports), port_name="admin"), Route)
    assert found.backend.url == "http://10.96.0.5:7000"


def test_an_ipv6_cluster_ip_is_bracketed() -> None:
    found = mapped(Service("tool-a", "a", "fd00::5", HTTP))
    assert isinstance(found, Route) and found.backend.url == "http://[fd00::5]:8000"


@pytest.mark.parametrize(
    ("service", "kind"),
    [
        (Service("tool-a", "b", "10.96.0.5", HTTP), "name"),
        (Service("default", "kubernetes", "10.96.0.1", HTTP), "namespace"),
        (Service("tool-Bad_Name", "Bad_Name", "10.96.0.5", HTTP), "namespace"),
        (Service("tool-a", "a", "None", HTTP), "headless"),
        (Service("tool-a", "a", "", HTTP), "headless"),
        (Service("tool-a", "a", "10.0.0.999", HTTP), "invalid"),
        (Service("tool-a", "a", "0.0.0.0", HTTP), "invalid"),
        (Service("tool-a", "a", "169.254.169.254", HTTP), "invalid"),
        (Service("tool-a", "a", "127.96.0.5", HTTP), "invalid"),  # loopback: the proxy itself
        (Service("tool-a", "a", "10.96.0.5", ()), "port"),
        (Service("tool-a", "a", "10.96.0.5", (ServicePort("x", 1), ServicePort("y", 2))), "port"),
    ],
)
def test_services_that_must_not_route_are_skipped_with_a_reason(service: Service, kind: str) -> None:
    found = mapped(service)
    assert isinstance(found, Skip) and found.kind == kind and found.reason


def test_registry_members_parse_back_to_the_route_they_stand_for() -> None:
    mapper = ServiceMapper(Kube2proxy())
    assert mapper.parse_member("tool-a/a/.*") is not None
    owned = mapper.parse_member("tool-a/a/api.*")
    assert owned is not None and (owned.tool, owned.route) == ("a", "/api.*")
    for foreign in ("kube-system/dns/.*", "tool-a/b/.*", "garbage", "tool-a/a/"):
        assert mapper.parse_member(foreign) is None


def test_a_service_object_with_odd_fields_parses_without_errors() -> None:
    found = service_from({"metadata": {"name": "a", "labels": None}, "spec": {"ports": [{"port": "x"}, 5]}})
    assert found == Service("", "a", "", (), {})


def test_the_kube2proxy_section_is_optional_and_typed() -> None:
    base = "proxies: [{name: p1}]\n"
    assert config.parse(base, "t").kube2proxy == Kube2proxy()
    fleet = config.parse(base + "kube2proxy: {watch_timeout: 60, resync_interval: 300, kubeconfig: /k}", "t")
    assert (fleet.kube2proxy.watch_timeout, fleet.kube2proxy.resync_interval) == (60, 300.0)
    with pytest.raises(ConfigError, match="kube2proxy: unknown setting"):
        config.parse(base + "kube2proxy: {watch_timout: 60}", "t")
    with pytest.raises(ConfigError, match=r"kube2proxy\.watch_timeout must be an integer"):
        config.parse(base + "kube2proxy: {watch_timeout: soon}", "t")
    with pytest.raises(ConfigError, match="must contain"):
        config.parse(base + "kube2proxy: {tool_namespace: tools}", "t")


def test_a_service_whose_ip_is_a_proxys_own_is_skipped() -> None:
    fleet = config.parse("proxies: [{name: p1, address: 10.96.0.7}]\n", "fleet.yaml")
    mapper = ServiceMapper(Kube2proxy(), Destinations.of_fleet(fleet))
    found = mapper.route_for(Service("tool-a", "a", "10.96.0.7", HTTP))
    assert isinstance(found, Skip) and found.kind == "invalid" and "a proxy's own address" in found.reason
