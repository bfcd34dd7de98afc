"""The optional `proxylistener` section of the fleet config."""

from __future__ import annotations

import pytest

from toolforgectl.core import config
from toolforgectl.core.errors import ConfigError

BASE = "proxies: [{name: proxy-01}]\n"


def test_the_section_is_optional_and_defaults_to_token_identity_on_8282() -> None:
    fleet = config.parse(BASE, "test.yaml")

    assert fleet.proxylistener.identity == ("token",)
    assert fleet.proxylistener.port == 8282


def test_settings_are_read_and_typed() -> None:
    text = (
        BASE + "proxylistener: {identity: [token, ident], ident_networks: [172.16.0.0/21], read_timeout: 3}\n"
    )

    settings = config.parse(text, "test.yaml").proxylistener

    assert settings.identity == ("token", "ident")
    assert settings.ident_networks == ("172.16.0.0/21",)
    assert settings.read_timeout == 3.0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{identity: [kerberos]}", "proxylistener.identity must list 'token' and/or 'ident'"),
        ("{backend_networks: [not-a-net]}", "'not-a-net' is not a network"),
        ("{port: eighty}", "proxylistener.port must be an integer"),
        ("{max_lines: 0}", "proxylistener.max_lines must be positive"),
        ("{tokens: yes}", "proxylistener: unknown setting(s): tokens"),
    ],
)
def test_bad_settings_are_one_clear_error(section: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.parse(BASE + f"proxylistener: {section}\n", "test.yaml")
