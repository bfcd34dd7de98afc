"""The `--json` envelope is an interface: scripts depend on its shape."""

from __future__ import annotations

import json

import pytest

from tests.conftest import RedisServer, run_cli
from toolforgectl.core.errors import RouteStoreError
from toolforgectl.core.output import ENVELOPE_KEYS, ERROR_ENVELOPE_KEYS, fail


def test_every_json_answer_has_the_stable_envelope(redis_server: RedisServer) -> None:
    redis_server.client().hset("prefix:a", ".*", "http://10.0.0.5:1")
    for argv, command in [
        (("routes", "list", "--json"), "routes list"),
        (("routes", "show", "a", "--json", "--no-probe"), "routes show"),
        (("routes", "set", "a", "http://10.0.0.5:2", "--json", "--dry-run"), "routes set"),
        (("debug", "redis", "--json"), "debug redis"),
        (("debug", "history", "a", "--json"), "debug history"),
    ]:
        result = run_cli("--redis", redis_server.url, *argv)
        assert result.code == 0, result.stderr
        envelope = json.loads(result.stdout)
        assert tuple(envelope) == ENVELOPE_KEYS == ("command", "ok", "data")
        assert envelope["command"] == command and envelope["ok"] is True


def test_an_error_with_json_is_the_error_envelope_on_stdout(redis_server: RedisServer) -> None:
    result = run_cli("--redis", redis_server.url, "routes", "show", "nosuchtool", "--json")
    assert result.code == 1, "the documented code of a tool without routes"
    envelope = json.loads(result.stdout)
    assert tuple(envelope) == ERROR_ENVELOPE_KEYS == ("command", "ok", "error")
    assert envelope["command"] == "routes show" and envelope["ok"] is False
    assert envelope["error"]["kind"] == "not_found"
    assert "no routes" in envelope["error"]["message"]
    assert result.stderr.startswith("toolforgectl: error:") and result.stderr.count("\n") == 1


REDIS_DOWN = ("--redis", "redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    ("argv", "command", "code", "kind"),
    [
        ((*REDIS_DOWN, "routes", "list", "--json"), "routes list", 3, "route_store"),
        (("--config", "/nonexistent.yaml", "debug", "redis", "--json"), "debug redis", 2, "config"),
        (
            (*REDIS_DOWN, "routes", "set", "../x", "http://10.0.0.5:1", "--json"),
            "routes set",
            2,
            "validation",
        ),
        (("routes", "show", "--json"), "routes show", 2, "usage"),
        (("routes", "list", "--json", "--no-such-flag"), "routes list", 2, "usage"),
    ],
    ids=["unavailable", "config", "validation", "missing-argument", "unknown-option"],
)
def test_every_kind_of_error_reaches_jq_with_its_exit_code(
    argv: tuple[str, ...], command: str, code: int, kind: str
) -> None:
    result = run_cli(*argv)
    assert result.code == code, result.stderr
    envelope = json.loads(result.stdout)
    assert envelope == {
        "command": command,
        "ok": False,
        "error": {"kind": kind, "message": envelope["error"]["message"]},
    }
    assert result.stderr == f"toolforgectl: error: {envelope['error']['message']}\n"


def test_an_error_without_json_leaves_stdout_empty() -> None:
    result = run_cli("--redis", "redis://127.0.0.1:1/0", "routes", "list")
    assert result.code == 3 and result.stdout == ""


def test_fail_is_one_line_with_the_program_and_the_error_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        fail("portreleaser", RouteStoreError("Redis said\nno"))
    assert ended.value.code == 3
    assert capsys.readouterr().err == "portreleaser: error: Redis said no\n"
