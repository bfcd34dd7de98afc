"""The optional `cloud:` section of the fleet config: which cloud, which floating IP, which servers."""

from __future__ import annotations

import pytest

from toolforgectl.core import config
from toolforgectl.core.errors import ConfigError

BASE = "proxies: [{name: proxy-01}, {name: proxy-02}]\n"


def complaint(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        config.parse(text, "fleet.yaml")
    return str(raised.value)


def test_a_fleet_without_a_cloud_section_loads_and_a_command_needing_it_names_the_section() -> None:
    fleet = config.parse(BASE, "fleet.yaml")

    assert fleet.cloud is None
    with pytest.raises(ConfigError, match=r"^fleet.yaml: this command needs a `cloud:` section"):
        fleet.needs_cloud()


def test_servers_default_to_the_proxies_names_and_can_be_mapped() -> None:
    text = BASE + "cloud:\n  name: eqiad1\n  floating_ip: 185.15.56.11\n  servers: {proxy-02: tools-proxy-06}"

    cloud = config.parse(text, "fleet.yaml").needs_cloud()

    assert (cloud.name, cloud.floating_ip, cloud.clouds_yaml) == ("eqiad1", "185.15.56.11", None)
    assert cloud.server("proxy-01") == "proxy-01"
    assert cloud.server("proxy-02") == "tools-proxy-06"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{name: eqiad1}", "fleet.yaml:3: cloud.floating_ip is required"),
        ("{floating_ip: 185.15.56.11}", "fleet.yaml:3: cloud.name is required"),
        ("{name: '', floating_ip: 185.15.56.11}", "fleet.yaml:3: cloud.name must not be empty"),
        (
            "{name: eqiad1, floating_ip: tools.wmflabs.org}",
            "fleet.yaml:3: cloud.floating_ip must be an IP address such as 185.15.56.11, "
            "not 'tools.wmflabs.org'",
        ),
        (
            "{name: eqiad1, floating_ip: 185.15.56.11, servers: {proxy-03: x}}",
            "fleet.yaml:3: cloud lists a server for 'proxy-03', which is not one of the proxies "
            "(proxy-01, proxy-02)",
        ),
        (
            "{name: eqiad1, floating_ip: 185.15.56.11, servers: [proxy-01]}",
            "fleet.yaml:3: cloud.servers must be a mapping, not a list",
        ),
        (
            "{name: eqiad1, floating_ip: 185.15.56.11, servers: {proxy-01: 5}}",
            "fleet.yaml:3: cloud.servers.proxy-01 must be a string, not an integer",
        ),
        (
            "{name: eqiad1, floating_ip: 185.15.56.11, clouds: x}",
            "fleet.yaml:3: cloud: unknown setting 'clouds' (did you mean 'clouds_yaml'?)",
        ),
    ],
)
def test_bad_cloud_settings_are_one_line_at_their_line(section: str, message: str) -> None:
    assert complaint(f"{BASE}\ncloud: {section}\n") == message
