"""`toolforgectl tools keygen` and `tools token`: provisioning a tool's proxylistener token."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from tests.conftest import run_cli as _cli
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import tokens


def test_keygen_writes_a_private_key_and_will_not_overwrite_it(tmp_path: Path) -> None:
    key = tmp_path / "key"

    assert _cli("tools", "keygen", str(key)).code == 0
    first = key.read_bytes()
    again = _cli("tools", "keygen", str(key))

    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert key.read_bytes() == first
    assert again.code == 2 and "invalidates every token" in again.stderr


def test_token_write_creates_a_0600_file_holding_a_valid_token(tmp_path: Path, redis_server: Any) -> None:
    key = tmp_path / "key"
    _cli("tools", "keygen", str(key))
    out = tmp_path / "token"

    done = _cli(
        "--redis", redis_server.url, "tools", "token", "mytool", "--key-file", str(key), "--write", str(out)
    )

    assert done.code == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert tokens.prove(key.read_bytes(), out.read_text().strip()) == ("mytool", 0)
    assert out.read_text().strip() not in done.stdout + done.stderr


def test_rotate_invalidates_the_old_token(tmp_path: Path, redis_server: Any) -> None:
    key = tmp_path / "key"
    _cli("tools", "keygen", str(key))
    base = ("--redis", redis_server.url, "tools", "token", "mytool", "--key-file", str(key), "--json")
    old = json.loads(_cli(*base).stdout)["data"]["token"]

    rotated = json.loads(_cli(*base, "--rotate").stdout)["data"]

    stored = RouteStore.from_url(redis_server.url).token_generation("mytool")
    assert rotated["generation"] == stored == 1
    assert tokens.prove(key.read_bytes(), rotated["token"]) == ("mytool", stored)
    assert tokens.prove(key.read_bytes(), old) == ("mytool", 0), "valid MAC, but of a past generation"


def test_a_rotation_is_in_the_tools_history_with_who_and_why(tmp_path: Path, redis_server: Any) -> None:
    key = tmp_path / "key"
    _cli("tools", "keygen", str(key))
    base = ("--redis", redis_server.url, "tools", "token", "mytool", "--key-file", str(key))

    done = _cli(
        *base, "--rotate", "--reason", "leaked in a paste", "--task-id", "T77", env={"SUDO_USER": "alice"}
    )

    assert done.code == 0, done.stderr
    history = json.loads(_cli("--redis", redis_server.url, "debug", "history", "mytool", "--json").stdout)
    [entry] = history["data"]["audit"]
    assert entry["action"] == "rotate-token" and entry["actor"].startswith("alice@")
    assert (entry["reason"], entry["task_id"]) == ("leaked in a paste", "T77")


def test_a_reason_without_rotate_is_refused(tmp_path: Path, redis_server: Any) -> None:
    key = tmp_path / "key"
    _cli("tools", "keygen", str(key))

    done = _cli(
        "--redis", redis_server.url, "tools", "token", "mytool", "--key-file", str(key), "--reason", "x"
    )

    assert done.code == 2 and "--rotate" in done.stderr and "tf1." not in done.stdout


def test_dry_run_rotates_and_writes_nothing(tmp_path: Path, redis_server: Any) -> None:
    key = tmp_path / "key"
    _cli("tools", "keygen", str(key))
    out = tmp_path / "token"

    done = _cli(
        "--redis", redis_server.url, "tools", "token", "mytool", "--key-file", str(key),
        "--rotate", "--write", str(out), "--dry-run",
    )  # fmt: skip

    assert done.code == 0, done.stderr
    assert "would write mytool's token (generation 1)" in done.stdout
    assert not out.exists() and redis_server.client().get("toolforgectl:token:mytool") is None


def test_a_bad_tool_name_is_one_error_line(tmp_path: Path, redis_server: Any) -> None:
    key = tmp_path / "key"
    _cli("tools", "keygen", str(key))

    done = _cli("--redis", redis_server.url, "tools", "token", "Not_A_Tool", "--key-file", str(key))

    assert done.code == 2 and done.stderr.count("\n") == 1 and "lowercase DNS label" in done.stderr
