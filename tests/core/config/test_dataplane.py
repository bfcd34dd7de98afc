"""The `dataplane:` section of the fleet config: defaults, and one clear line for each mistake."""

from __future__ import annotations

import pytest

from toolforgectl.core import config
from toolforgectl.core.errors import ConfigError

BASE = "proxies: [{name: p1, address: 127.0.0.1}]\n"


def test_without_a_dataplane_section_the_defaults_apply() -> None:
    plane = config.parse(BASE, "fleet.yaml").dataplane
    assert (plane.routing, plane.https_port, plane.internal_port, plane.rate_limit) == ("path", 443, 8081, 0)


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


@pytest.mark.parametrize(
    ("section", "complaint"),
    [
        ("{routing: sideways}", "dataplane.routing must be one of path, host"),
        ("{internal_port: 70000}", "dataplane.internal_port must be a port number"),
        ("{rate_limit: true}", "dataplane.rate_limit must be an integer"),
        ("{rate_limt: 5}", "unknown setting(s): rate_limt"),
        ("{default_backend: 'http://example.org:80'}", "dataplane.default_backend"),
        ("[1, 2]", "'dataplane' must be a mapping"),
    ],
)
def test_mistakes_are_one_line_naming_the_setting(section: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config.parse(BASE + f"dataplane: {section}\n", "fleet.yaml")
    assert complaint in str(raised.value) and str(raised.value).startswith("fleet.yaml: ")
