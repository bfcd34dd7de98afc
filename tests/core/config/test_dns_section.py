"""The optional `dns:` section of the fleet config: the record that follows the active proxy."""

from __future__ import annotations

import pytest

from toolforgectl.core import config
from toolforgectl.core.errors import ConfigError

BASE = (
    "proxies: [{name: proxy-01, address: 172.16.0.10}, {name: proxy-02, address: 172.16.0.11}]\n"
    "cloud: {name: eqiad1, floating_ip: 185.15.56.11}\n"
)


def complaint(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        config.parse(text, "fleet.yaml")
    return str(raised.value)


def test_without_a_dns_section_there_is_no_record_to_change() -> None:
    assert config.parse(BASE, "fleet.yaml").dns is None


def test_names_become_absolute_and_resolvers_default_to_port_53() -> None:
    text = BASE + "dns: {name: Tools.WMFlabs.org, zone: wmflabs.org, resolvers: [172.20.255.1, '[::1]:5353']}"

    dns = config.parse(text, "fleet.yaml").dns

    assert dns is not None
    assert (dns.name, dns.zone, dns.backend) == ("tools.wmflabs.org.", "wmflabs.org.", "designate")
    assert dns.resolver_addresses() == [("172.20.255.1", 53), ("::1", 5353)]
    assert dns.address("proxy-02", "172.16.0.11") == "172.16.0.11"


def test_a_proxy_may_have_another_address_in_dns() -> None:
    text = BASE + "dns: {name: a.org, zone: a.org, resolvers: [10.0.0.1], addresses: {proxy-02: 10.9.9.9}}"

    dns = config.parse(text, "fleet.yaml").dns

    assert dns is not None and dns.address("proxy-02", "172.16.0.11") == "10.9.9.9"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{name: a.org, resolvers: [10.0.0.1]}", "dns needs `zone`"),
        ("{name: a.org, zone: b.org, resolvers: [10.0.0.1]}", "`name` a.org. is not in `zone` b.org."),
        ("{name: a.org, zone: a.org, resolvers: []}", "needs at least one resolver"),
        ("{name: a.org, zone: a.org, resolvers: [ns1.a.org]}", "dns.resolvers[0] must be a resolver's"),
        ("{name: a.org, zone: a.org, resolvers: ['10.0.0.1:99999']}", "dns.resolvers[0] must be"),
        ("{name: 'a b', zone: a.org, resolvers: [10.0.0.1]}", "dns.name must be a DNS name"),
        ("{name: a.org, backend: command, resolvers: [10.0.0.1]}", "needs `command`"),
        ("{name: a.org, backend: bind, resolvers: [10.0.0.1]}", "dns.backend must be one of"),
        (
            "{name: a.org, backend: command, command: 'set {host}', resolvers: [10.0.0.1]}",
            "dns.command uses {host}; it may use only {name}, {zone}, {address}, {old_address}",
        ),
        (
            "{name: a.org, zone: a.org, resolvers: [10.0.0.1], addresses: {proxy-09: 10.0.0.9}}",
            "lists an address for 'proxy-09', which is not one of the proxies",
        ),
    ],
)
def test_a_broken_dns_section_is_one_line_naming_the_setting(section: str, message: str) -> None:
    assert message in complaint(BASE + f"dns: {section}\n")


def test_designate_needs_the_cloud_section_and_a_command_does_not() -> None:
    proxies = BASE.splitlines()[0] + "\n"
    assert "needs the `cloud:` section" in complaint(
        proxies + "dns: {name: a.org, zone: a.org, resolvers: [10.0.0.1]}\n"
    )
    text = (
        proxies
        + "dns: {name: a.org, backend: command, command: 'nsupdate-proxy {address}', resolvers: [10.0.0.1]}"
    )
    assert config.parse(text, "fleet.yaml").dns is not None
