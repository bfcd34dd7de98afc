"""Registration tokens: what they prove and what they refuse."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from toolforgectl.core import tokens
from toolforgectl.core.errors import ConfigError, ValidationError

KEY = b"s" * 32


def test_a_minted_token_proves_its_tool_and_generation() -> None:
    assert tokens.prove(KEY, tokens.mint(KEY, "mytool", 3)) == ("mytool", 3)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("tf1.mytool.0", "malformed"),
        ("tf2.mytool.0.x", "malformed"),
        ("tf1.mytool.-1.x", "malformed"),
        ("tf1.My_Tool.0.x", "lowercase DNS label"),
        ("tf1.mytool.0." + "A" * 300, "too long"),
        ("tf1.mytool.1234567890.x", "malformed"),
    ],
)
def test_malformed_tokens_are_refused_before_any_mac_work(token: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        tokens.prove(KEY, token)


# "²" is a digit to str.isdigit() but not to int(); "٠" (Arabic-Indic) and "０" (full-width) are read
# as 0 by int(); "00" too. Only the spelling `mint` writes is the generation.
@pytest.mark.parametrize("generation", ["²", "٠", "０", "00", "01", "+1", " 1", "1_0"])
def test_a_generation_spelled_other_than_ascii_digits_is_malformed(generation: str) -> None:
    mac = tokens.mint(KEY, "mytool", 0).rsplit(".", 1)[1]

    with pytest.raises(ValidationError, match="malformed"):
        tokens.prove(KEY, f"tf1.mytool.{generation}.{mac}")


def test_the_mac_binds_the_name_the_generation_and_the_key() -> None:
    token = tokens.mint(KEY, "mytool", 0)
    mac = token.rsplit(".", 1)[1]

    for forged in (f"tf1.victim.0.{mac}", f"tf1.mytool.1.{mac}", tokens.mint(b"o" * 32, "mytool", 0)):
        with pytest.raises(ValidationError, match="not valid"):
            tokens.prove(KEY, forged)


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(KEY)
    key.chmod(0o644)

    with pytest.raises(ConfigError, match="readable by others; chmod 600"):
        tokens.load_key(key)
    key.chmod(0o600)
    assert tokens.load_key(key) == KEY


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_write_secret_gives_the_file_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "token"

    tokens.write_secret(path, b"secret\n", owner="nobody")

    assert path.stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
