"""The fleet config: every problem is one line naming the file and the line to fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.conftest import RedisServer, run_cli
from toolforgectl.core import config
from toolforgectl.core.errors import ConfigError

GOOD = """
proxies:
  - name: proxy-01
    address: 127.0.0.2
  - name: proxy-02
    address: 127.0.0.3
    redis: redis://127.0.0.3:7000/0
active_proxy: proxy-02
"""


def complaint(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        config.parse(text, "fleet.yaml")
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_good_config_loads_into_typed_frozen_objects() -> None:
    fleet = config.parse(GOOD, "fleet.yaml")
    assert fleet.proxy().name == "proxy-02"
    assert fleet.proxy().redis == "redis://127.0.0.3:7000/0"
    assert fleet.proxy("proxy-01").redis == "redis://127.0.0.2:6379/0"
    with pytest.raises(AttributeError):
        fleet.active_proxy = "x"  # type: ignore[misc]


def test_the_active_proxy_defaults_to_the_first_and_a_bare_proxy_to_loopback() -> None:
    fleet = config.parse("proxies:\n  - name: a\n  - name: b\n", "fleet.yaml")
    assert fleet.active_proxy == "a"
    assert fleet.proxy("b").redis == "redis://127.0.0.1:6379/0"


def test_a_replaced_setting_is_checked_like_a_loaded_one() -> None:
    plane = config.parse(GOOD, "fleet.yaml").dataplane
    assert dataclasses.replace(plane, http_port=8080).http_port == 8080
    with pytest.raises(ValueError, match="port number"):
        dataclasses.replace(plane, http_port=0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxies: [\n  - name: x\n", "fleet.yaml:2: invalid YAML"),
        ("- just a list\n", "fleet.yaml:1: expected a mapping of settings at the top level, not list"),
        ("", "fleet.yaml:1: expected a mapping of settings at the top level, not nothing"),
        ("proxies: []\n", "fleet.yaml:1: proxies must list at least one proxy"),
        ("active_proxy: a\n", "fleet.yaml:1: proxies is required"),
        (
            "proxies: [{name: a}]\nactive_proxy: b\n",
            "fleet.yaml:2: active_proxy must be one of the proxies (a)",
        ),
        ("proxies: [{name: a}, {name: a}]\n", "fleet.yaml:1: proxies must have unique names: 'a'"),
        ("proxies:\n  - address: 10.0.0.1\n", "fleet.yaml:2: proxies[0].name is required"),
        ("proxies: [{name: a}]\nsource: x\n", "fleet.yaml:2: unknown setting 'source'"),
        ('proxies: [{name: "a$b"}]\n', "fleet.yaml:1: proxies[0].name must be a host name"),
    ],
)
def test_broken_configs_name_the_line_and_the_problem(text: str, message: str) -> None:
    assert complaint(text).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "proxys: []\n", "fleet.yaml:9: unknown setting 'proxys' (did you mean 'proxies'?)"),
        (
            GOOD.replace("    address: 127.0.0.3", "    adress: 127.0.0.3"),
            "fleet.yaml:6: proxies[1]: unknown setting 'adress' (did you mean 'address'?)",
        ),
        (
            "proxies: [{name: a, adress: 10.0.0.1}]\n",
            "fleet.yaml:1: proxies[0]: unknown setting 'adress' (did you mean 'address'?)",
        ),
    ],
)
def test_a_misspelt_key_is_refused_at_its_line_with_a_suggestion(text: str, message: str) -> None:
    assert complaint(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxies: [{name: 5}]\n", "fleet.yaml:1: proxies[0].name must be a string, not an integer"),
        (
            "proxies:\n  - name: a\n    redis: 6379\n",
            "fleet.yaml:3: proxies[0].redis must be a string, not an integer",
        ),
        ("proxies: {name: a}\n", "fleet.yaml:1: proxies must be a list, not a mapping"),
        (
            "proxies: [{name: a}]\nactive_proxy: [a]\n",
            "fleet.yaml:2: active_proxy must be a string, not a list",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_at_its_line(text: str, message: str) -> None:
    assert complaint(text) == message


def test_several_problems_show_the_first_by_line_and_count_the_rest() -> None:
    text = "proxies:\n  - name: a\n    adress: x\ndataplane:\n  http_port: '80'\n  rate_limt: 3\n"
    assert complaint(text) == (
        "fleet.yaml:3: proxies[0]: unknown setting 'adress' (did you mean 'address'?) (and 2 more)"
    )


def test_a_key_given_twice_is_refused_instead_of_the_last_one_winning() -> None:
    text = "proxies: [{name: a}]\ndataplane:\n  http_port: 80\n  routing: host\n  http_port: 8080\n"
    assert complaint(text) == "fleet.yaml:5: dataplane: 'http_port' is set twice (first on line 3)"


def test_a_value_yaml_cannot_build_names_its_line() -> None:
    text = "proxies: [{name: a}]\ndataplane:\n  brand: 2024-13-45\n"
    assert complaint(text).startswith("fleet.yaml:3: invalid YAML value: '2024-13-45'")


def test_missing_config_file_is_exit_2_with_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run_cli("--config", str(missing), "routes", "list")
    assert result.code == 2
    assert str(missing) in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_broken_yaml_gives_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("proxies:\n  - name: a\n    address: [unclosed\n")
    result = run_cli("routes", "list", env={"TOOLFORGECTL_CONFIG": str(path)})
    assert result.code == 2
    assert f"{path}:4:" in result.stderr and "invalid YAML" in result.stderr


def test_a_misspelt_key_stops_the_cli_with_exit_2_and_one_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("proxies:\n  - name: a\n    adress: 10.0.0.1\n")
    result = run_cli("--config", str(path), "routes", "list")
    assert result.code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.endswith(f"{path}:3: proxies[0]: unknown setting 'adress' (did you mean 'address'?)")


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        (b"proxies:\n  - name: caf\xe9\n", 2, "not a UTF-8 text file (byte 0xe9)"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 1, "not a UTF-8 text file (byte 0x8b)"),
        (b"proxies:\n\x00\x01\x02\x03", 2, "not a text file (character U+0000)"),
    ],
)
def test_a_non_utf8_or_binary_file_is_one_line_exit_2(
    tmp_path: Path, content: bytes, line: int, problem: str
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_bytes(content)
    result = run_cli("--config", str(path), "routes", "list")
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"{path}:{line}: {problem}" in result.stderr


def test_commands_use_the_active_proxys_redis_from_the_config(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "proxies:\n"
        "  - {name: standby, redis: 'redis://127.0.0.1:1/0'}\n"
        f"  - {{name: active, redis: '{redis_server.url}'}}\n"
        "active_proxy: active\n"
    )
    result = run_cli("--config", str(path), "routes", "set", "dplbot", "http://10.0.0.5:8000")
    assert result.code == 0, result.stderr
    assert redis_server.client().hget("prefix:dplbot", ".*") == "http://10.0.0.5:8000"
    standby = run_cli("--config", str(path), "--proxy", "standby", "routes", "list")
    assert standby.code == 3
