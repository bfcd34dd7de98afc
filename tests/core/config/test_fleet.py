"""The fleet config: found where documented, and every problem is one line naming the file."""

from __future__ import annotations

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
cloud: lab
"""


def test_a_good_config_loads_into_typed_objects() -> None:
    fleet = config.parse(GOOD, "fleet.yaml")
    assert fleet.proxy().name == "proxy-02"
    assert fleet.proxy().redis == "redis://127.0.0.3:7000/0"
    assert fleet.proxy("proxy-01").redis == "redis://127.0.0.2:6379/0"
    with pytest.raises(AttributeError):
        fleet.active_proxy = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxies: [\n  - name: x\n", "fleet.yaml:2: invalid YAML"),
        ("- just a list\n", "expected a mapping"),
        ("proxies: []\n", "non-empty list"),
        ("proxies: [{name: a}]\nactive_proxy: b\n", "active_proxy 'b'"),
        ("proxies: [{name: a}]\nproxys: []\n", "unknown setting(s): proxys"),
        ("proxies: [{name: a}, {name: a}]\n", "unique"),
    ],
)
def test_broken_configs_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.parse(text, "fleet.yaml")


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
    assert f"{path}:" in result.stderr and "invalid YAML" in result.stderr


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
    result = run_cli("--config", str(path), "routes", "set", "dplbot", "http://127.0.0.1:8000")
    assert result.code == 0, result.stderr
    assert redis_server.client().hget("prefix:dplbot", ".*") == "http://127.0.0.1:8000"
    standby = run_cli("--config", str(path), "--proxy", "standby", "routes", "list")
    assert standby.code == 3
