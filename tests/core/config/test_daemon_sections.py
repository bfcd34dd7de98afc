"""The optional `proxylistener:` and `kube2proxy:` sections of the fleet config."""

from __future__ import annotations

import pytest

from toolforgectl.core import config
from toolforgectl.core.errors import ConfigError

BASE = "proxies: [{name: proxy-01}]\n"


def complaint(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        config.parse(text, "test.yaml")
    return str(raised.value)


def test_the_sections_are_optional_and_default_to_token_identity_on_8282() -> None:
    fleet = config.parse(BASE, "test.yaml")

    assert fleet.proxylistener.identity == ("token",)
    assert fleet.proxylistener.port == 8282
    assert fleet.kube2proxy == config.Kube2proxy()


def test_settings_are_read_and_typed() -> None:
    text = (
        BASE + "proxylistener: {identity: [token, ident], ident_networks: [172.16.0.0/21], read_timeout: 3}\n"
    )

    settings = config.parse(text, "test.yaml").proxylistener

    assert settings.identity == ("token", "ident")
    assert settings.ident_networks == ("172.16.0.0/21",)
    assert settings.read_timeout == 3.0 and isinstance(settings.read_timeout, float)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{identity: [kerberos]}", "proxylistener.identity must list 'token' and/or 'ident'"),
        ("{identity: []}", "proxylistener.identity must list 'token' and/or 'ident'"),
        ("{identity: token}", "proxylistener.identity must be a list, not a string"),
        (
            "{backend_networks: [10.0.0.0/8, not-a-net]}",
            "proxylistener.backend_networks[1] must be a network such as 172.16.0.0/21, not 'not-a-net'",
        ),
        ("{port: eighty}", "proxylistener.port must be an integer, not a string"),
        ("{port: 70000}", "proxylistener.port must be a port number (1-65535)"),
        ("{metrics_port: -1}", "proxylistener.metrics_port must be a port number (1-65535), or 0 for off"),
        ("{max_lines: 0}", "proxylistener.max_lines must be positive"),
        ("{read_timeout: '5'}", "proxylistener.read_timeout must be a number, not a string"),
        (
            "{canonical_domain: ''}",
            "proxylistener.canonical_domain is not a usable domain name: domain name is empty",
        ),
    ],
)
def test_bad_proxylistener_settings_are_one_line_at_their_line(section: str, message: str) -> None:
    assert complaint(BASE + f"proxylistener: {section}\n") == f"test.yaml:2: {message}"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "{tool_namespace: tools}",
            "kube2proxy.tool_namespace must contain {tool}, where the tool's name goes",
        ),
        ("{kubeconfig: 5}", "kube2proxy.kubeconfig must be a string, not an integer"),
        ("{watch_timeout: 0}", "kube2proxy.watch_timeout must be positive"),
        ("{backoff_max: true}", "kube2proxy.backoff_max must be a number, not true/false"),
    ],
)
def test_bad_kube2proxy_settings_are_one_line_at_their_line(section: str, message: str) -> None:
    assert complaint(BASE + f"kube2proxy: {section}\n") == f"test.yaml:2: {message}"


@pytest.mark.parametrize(
    ("section", "typo", "meant"),
    [("proxylistener", "identiy", "identity"), ("kube2proxy", "watch_timout", "watch_timeout")],
)
def test_a_misspelt_key_in_a_daemon_section_is_refused_at_its_line(
    section: str, typo: str, meant: str
) -> None:
    text = BASE + f"{section}:\n  metrics_port: 0\n  {typo}: 1\n"
    assert complaint(text) == f"test.yaml:4: {section}: unknown setting {typo!r} (did you mean {meant!r}?)"
