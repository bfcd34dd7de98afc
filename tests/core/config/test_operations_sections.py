"""The `hiera:` and `operations:` sections of the fleet config (the playbook engine's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolforgectl.core import config
from toolforgectl.core.errors import ConfigError

BASE = "proxies: [{name: proxy-01}]\n"


def complaint(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        config.parse(text, "fleet.yaml")
    return str(raised.value)


def test_both_sections_are_optional() -> None:
    fleet = config.parse(BASE, "fleet.yaml")

    assert fleet.hiera is None
    assert fleet.operations.lock_ttl == 600
    assert fleet.operations.runs().parts[-2:] == ("toolforgectl", "runs")
    with pytest.raises(ConfigError, match="no `hiera:` section"):
        fleet.need_hiera()


def test_hiera_is_read_with_the_active_proxy_key_by_default() -> None:
    hiera = config.parse(BASE + "hiera: {backend: file, path: /srv/hiera.yaml}\n", "fleet.yaml").need_hiera()
    assert (hiera.backend, hiera.path, hiera.active_proxy_key) == (
        "file",
        "/srv/hiera.yaml",
        "profile::toolforge::active_proxy_host",
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "hiera: {backend: file}",
            "fleet.yaml:2: hiera needs `path` (the hiera YAML file) for the file backend",
        ),
        ("hiera: {backend: http, url: enc}", "fleet.yaml:2: hiera needs `url` (http:// or https://)"),
        ("hiera: {backend: s3, path: x}", "fleet.yaml:2: hiera.backend must be one of file, http"),
        ("operations: {lock_ttl: 0}", "fleet.yaml:2: operations.lock_ttl must be positive"),
        (
            "operations: {log: {file: a, command: b}}",
            "fleet.yaml:2: operations.log takes `file` or `command`",
        ),
        ("operations: {stat_dir: /x}", "fleet.yaml:2: operations: unknown setting 'stat_dir' (did you mean"),
    ],
)
def test_mistakes_name_the_setting_and_line(section: str, message: str) -> None:
    assert complaint(f"{BASE}{section}\n").startswith(message)


def test_state_dir_expands_the_home_directory() -> None:
    fleet = config.parse(BASE + "operations: {state_dir: ~/runs}\n", "fleet.yaml")
    assert fleet.operations.runs() == Path.home() / "runs"
