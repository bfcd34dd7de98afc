"""Where the fleet config is found: --config, $TOOLFORGECTL_CONFIG, the user's file, /etc's file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RedisServer, run_cli
from toolforgectl.core import config
from toolforgectl.core.config import lookup
from toolforgectl.core.errors import ConfigError

FLEET = "proxies: [{name: from-%s}]\n"


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A home, an XDG dir and a stand-in for /etc, none holding a config yet; no env var set."""
    home, xdg, etc = tmp_path / "home", tmp_path / "xdg", tmp_path / "etc"
    for directory in (home, xdg, etc):
        directory.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    monkeypatch.setattr(lookup, "SYSTEM_PATH", etc / "toolforgectl" / "config.yaml")
    return {
        "home": home / ".config" / "toolforgectl" / "config.yaml",
        "xdg": xdg / "toolforgectl" / "config.yaml",
        "etc": etc / "toolforgectl" / "config.yaml",
        "env": tmp_path / "env.yaml",
        "option": tmp_path / "option.yaml",
    }


def write(path: Path, name: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FLEET % name)
    return path


def found(option: str | None = None) -> str:
    return config.load(config.config_path(option)).active_proxy


def test_each_place_wins_over_the_ones_after_it(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(places["etc"], "etc")
    assert found() == "from-etc"
    write(places["home"], "home")
    assert found() == "from-home"
    write(places["env"], "env")
    monkeypatch.setenv(config.ENV_VAR, str(places["env"]))
    assert found() == "from-env"
    assert found(str(write(places["option"], "option"))) == "from-option"


def test_xdg_config_home_replaces_dot_config(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(places["home"], "home")
    write(places["xdg"], "xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(places["xdg"].parent.parent))
    assert found() == "from-xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # the XDG spec says to ignore it
    assert found() == "from-home"


def test_an_explicit_path_that_does_not_exist_is_an_error_not_a_fallback(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(places["etc"], "etc")
    with pytest.raises(ConfigError, match=f"{places['option']}: no such config file"):
        found(str(places["option"]))
    monkeypatch.setenv(config.ENV_VAR, str(places["env"]))
    with pytest.raises(ConfigError, match=f"{places['env']}: no such config file"):
        found()


def test_none_found_says_where_it_looked(places: dict[str, Path]) -> None:
    with pytest.raises(ConfigError) as raised:
        config.config_path(None)
    message = str(raised.value)
    assert "no fleet config found" in message and "--redis URL" in message
    for where in ("--config", "$TOOLFORGECTL_CONFIG", str(places["home"]), str(places["etc"])):
        assert where in message


def test_the_cli_uses_the_users_config_without_flags(tmp_path: Path, redis_server: RedisServer) -> None:
    path = tmp_path / "xdg" / "toolforgectl" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(f"proxies: [{{name: p1, redis: '{redis_server.url}'}}]\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), config.ENV_VAR: ""}
    result = run_cli("routes", "set", "dplbot", "http://10.0.0.5:8000", env=env)
    assert result.code == 0, result.stderr
    assert redis_server.client().hget("prefix:dplbot", ".*") == "http://10.0.0.5:8000"
