"""`toolforgectl block` as an operator runs it: a real process against a real Redis."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CliResult, RedisServer, run_cli


def block(redis_server: RedisServer, *args: str, env: dict[str, str] | None = None) -> CliResult:
    return run_cli("--redis", redis_server.url, "block", *args, env=env)


def test_add_then_list_shows_who_blocked_what_and_why(redis_server: RedisServer) -> None:
    added = block(
        redis_server,
        "add",
        "ip",
        "198.51.100.0/24",
        "--reason",
        "scraper",
        "--task-id",
        "T4242",
        env={"SUDO_USER": "alice"},
    )
    assert added.code == 0, added.stderr
    assert added.stdout == "did add: ip '198.51.100.0/24'\n"
    listed = block(redis_server, "list", "--json")
    assert listed.code == 0, listed.stderr
    [entry] = json.loads(listed.stdout)["data"]
    assert entry["kind"] == "ip" and entry["entry"] == "198.51.100.0/24"
    assert entry["actor"].startswith("alice@") and (entry["reason"], entry["task_id"]) == ("scraper", "T4242")
    assert entry["time"] > 0


def test_add_answers_the_json_envelope_and_is_idempotent(redis_server: RedisServer) -> None:
    first = block(redis_server, "add", "user-agent", "^EvilBot", "--json")
    again = block(redis_server, "add", "user-agent", "^EvilBot", "--json")
    assert json.loads(first.stdout) == {
        "command": "block add",
        "ok": True,
        "data": [
            {
                "kind": "user-agent",
                "entry": "^EvilBot",
                "action": "add",
                "before": False,
                "after": True,
                "dry_run": False,
                "changed": True,
            }
        ],
    }
    assert json.loads(again.stdout)["data"][0]["changed"] is False
    assert redis_server.client().get("toolforgectl:routes:version") == "1"


def test_dry_run_says_what_would_change_and_writes_nothing(redis_server: RedisServer) -> None:
    result = block(redis_server, "add", "referer", r"spam\.example", "--dry-run")
    assert result.code == 0, result.stderr
    assert result.stdout == "would add: referer 'spam\\\\.example'\n"
    assert redis_server.client().dbsize() == 0
    redis_server.client().hset("toolforgectl:block:referer", r"spam\.example", "{}")
    removal = block(redis_server, "remove", "referer", r"spam\.example", "--dry-run")
    assert removal.code == 0 and removal.stdout.startswith("would remove:")
    assert redis_server.client().hkeys("toolforgectl:block:referer") == [r"spam\.example"]


def test_remove_takes_the_entry_out_in_any_spelling_of_it(redis_server: RedisServer) -> None:
    assert block(redis_server, "add", "ip", "203.0.113.9").code == 0
    removed = block(redis_server, "remove", "ip", "203.0.113.9/32", "--reason", "appeal accepted")
    assert removed.code == 0, removed.stderr
    assert redis_server.client().hlen("toolforgectl:block:ip") == 0


def test_removing_what_is_not_blocked_fails_in_one_line(redis_server: RedisServer) -> None:
    result = block(redis_server, "remove", "user-agent", "NotBlocked")
    assert result.code == 1
    assert result.stderr.startswith("toolforgectl: error:") and result.stderr.count("\n") == 1
    assert "not in the block list" in result.stderr
    assert redis_server.client().dbsize() == 0


@pytest.mark.parametrize(
    "argv",
    [
        ("add", "ip", "203.0.113.9/24"),
        ("add", "ip", "0.0.0.0/0"),
        ("add", "user-agent", "(" * 10_000),
        ("add", "cookie", "x"),
        ("list", "--kind", "cookie"),
    ],
    ids=lambda argv: " ".join(argv)[:30],
)
def test_refused_input_is_one_line_exit_2_and_writes_nothing(
    redis_server: RedisServer, argv: tuple[str, ...]
) -> None:
    result = block(redis_server, *argv)
    assert result.code == 2, result.stderr
    assert result.stderr.startswith("toolforgectl: error:") and result.stderr.count("\n") == 1
    assert len(result.stderr) < 400
    assert redis_server.client().dbsize() == 0


def test_list_of_one_kind(redis_server: RedisServer) -> None:
    block(redis_server, "add", "ip", "192.0.2.1")
    block(redis_server, "add", "user-agent", "Bot")
    result = block(redis_server, "list", "--kind", "user-agent")
    assert result.code == 0, result.stderr
    assert "Bot" in result.stdout and "192.0.2.1" not in result.stdout
