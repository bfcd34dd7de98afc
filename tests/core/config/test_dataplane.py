"""The `dataplane:` section of the fleet config: defaults, and one clear line for each mistake."""

from __future__ import annotations

import pytest

from toolforgectl.core import config
from toolforgectl.core.errors import ConfigError

BASE = "proxies: [{name: p1, address: 127.0.0.1}]\n"


def test_without_a_dataplane_section_the_defaults_apply() -> None:
    plane = config.parse(BASE, "fleet.yaml").dataplane
    assert (plane.routing, plane.https_port, plane.internal_port, plane.rate_limit) == ("path", 443, 8081, 0)


def test_an_empty_section_is_the_defaults() -> None:
    assert (
        config.parse(BASE + "dataplane:\n  # routing: host\n", "fleet.yaml").dataplane == config.DataPlane()
    )


def test_settings_are_read() -> None:
    text = (
        BASE + "dataplane: {routing: host, internal_port: 9081, default_backend: 'http://127.0.0.1:8000'}\n"
    )
    plane = config.parse(text, "fleet.yaml").dataplane
    assert (plane.routing, plane.internal_port, plane.default_backend) == (
        "host",
        9081,
        "http://127.0.0.1:8000",
    )


def test_nginx_counts_and_sizes_may_be_written_as_numbers() -> None:
    plane = config.parse(BASE + "dataplane: {worker_processes: 4, access_log_buffer: 65536}\n", "f").dataplane
    assert (plane.worker_processes, plane.access_log_buffer) == ("4", "65536")


@pytest.mark.parametrize(
    ("section", "complaint"),
    [
        ("{routing: sideways}", "dataplane.routing must be one of path, host"),
        ("{internal_port: 70000}", "dataplane.internal_port must be a port number (1-65535)"),
        ("{rate_limit: true}", "dataplane.rate_limit must be an integer, not true/false"),
        ("{rate_limit: -1}", "dataplane.rate_limit must be 0 (off) or positive"),
        ("{maintenance: 'yes'}", "dataplane.maintenance must be true or false, not a string"),
        ("{rate_limt: 5}", "dataplane: unknown setting 'rate_limt' (did you mean 'rate_limit'?)"),
        (
            "{default_backend: 'http://169.254.169.254:80'}",
            "dataplane.default_backend is not a usable backend",
        ),
        ("{redis_maxmemory: lots}", "dataplane.redis_maxmemory must be a size Redis reads, such as 512mb"),
        ("{redis_maxmemory: '0'}", "dataplane.redis_maxmemory must be a size Redis reads"),
        ("[1, 2]", "dataplane must be a mapping, not a list"),
        ("{canonical_domain: 'https://toolforge.org/'}", "dataplane.canonical_domain is not a usable domain"),
        ("{read_timeout: 0}", "dataplane.read_timeout must be positive"),
        ("{client_ip: shown}", "dataplane.client_ip must be one of hidden, forwarded"),
        ("{client_ip_forwarded_tools: [My_Tool]}", "dataplane.client_ip_forwarded_tools must list tool"),
        (
            "{client_ip: forwarded, client_ip_forwarded_tools: [a]}",
            "dataplane.client_ip_forwarded_tools is only for client_ip: hidden",
        ),
    ],
)
def test_mistakes_are_one_line_naming_the_file_line_and_setting(section: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config.parse(BASE + f"dataplane: {section}\n", "fleet.yaml")
    assert str(raised.value).startswith(f"fleet.yaml:2: {complaint}")


def test_client_addresses_are_hidden_from_tools_by_default_as_in_the_original() -> None:
    plane = config.parse(BASE, "fleet.yaml").dataplane
    assert (plane.client_ip, plane.client_ip_forwarded_tools) == ("hidden", ())
    listed = config.parse(BASE + "dataplane: {client_ip_forwarded_tools: [geohack]}\n", "f").dataplane
    assert listed.client_ip_forwarded_tools == ("geohack",)
