"""`debug history` shows who changed a tool and why, and its writes in the AOF; `debug redis` shows
replication."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RedisServer, run_cli, wait_until
from toolforgectl.adapters.processes import start_redis


def _resp(*args: str) -> bytes:
    out = f"*{len(args)}\r\n".encode()
    for arg in args:
        out += f"${len(arg.encode())}\r\n{arg}\r\n".encode()
    return out


def _wait_for_aof(redis_server: RedisServer, expected: int) -> list[dict[str, object]]:
    def history() -> list[dict[str, object]]:
        result = run_cli("--redis", redis_server.url, "debug", "history", "dplbot", "--json")
        changes: list[dict[str, object]] = json.loads(result.stdout)["data"]["changes"]
        return changes if len(changes) >= expected else []

    # appendfsync everysec: the AOF catches up within about a second.
    return wait_until(history, f"{expected} changes in the AOF", timeout=5, interval=0.2)


def test_history_shows_the_set_and_delete_sequence_from_the_aof(redis_server: RedisServer) -> None:
    url = redis_server.url
    for argv in [
        ("routes", "set", "dplbot", "http://10.0.0.5:8000"),
        ("routes", "set", "other", "http://10.0.0.5:9999"),
        ("routes", "set", "dplbot", "http://10.0.0.5:8001"),
        ("routes", "set", "dplbot", "http://10.0.0.5:8002", "--route", "^/api"),
        ("routes", "delete", "dplbot", "--route", "^/api"),
    ]:
        assert run_cli("--redis", url, *argv).code == 0
    changes = _wait_for_aof(redis_server, 4)
    assert [c["args"] for c in changes] == [
        ["HSET", "prefix:dplbot", ".*", "http://10.0.0.5:8000"],
        ["HSET", "prefix:dplbot", ".*", "http://10.0.0.5:8001"],
        ["HSET", "prefix:dplbot", "^/api", "http://10.0.0.5:8002"],
        ["HDEL", "prefix:dplbot", "^/api"],
    ]
    assert all(isinstance(c["time"], float) for c in changes)  # Redis 7 #TS annotations
    human = run_cli("--redis", url, "debug", "history", "dplbot")
    assert "HDEL prefix:dplbot ^/api" in human.stdout and "audit record" in human.stdout


def test_history_reads_a_single_file_aof_with_an_rdb_preamble(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    aof = tmp_path / "tools-proxy-01-6379.aof"
    rdb_preamble = b"REDIS0010\xfa\tredis-ver\x057.0.0\xff" + b"\x00" * 8
    aof.write_bytes(
        rdb_preamble
        + _resp("SELECT", "0")
        + _resp("HSET", "prefix:dplbot", ".*", "http://10.68.1.1:4000")
        + _resp("HSET", "prefix:dplbotx", ".*", "http://10.68.1.1:4001")
        + _resp("DEL", "prefix:dplbot")
    )
    result = run_cli("--redis", redis_server.url, "debug", "history", "dplbot", "--aof", str(aof), "--json")
    assert result.code == 0, result.stderr
    args = [c["args"] for c in json.loads(result.stdout)["data"]["changes"]]
    assert args == [["HSET", "prefix:dplbot", ".*", "http://10.68.1.1:4000"], ["DEL", "prefix:dplbot"]]


def test_history_answers_who_changed_a_tool_and_why(redis_server: RedisServer) -> None:
    url = redis_server.url
    alice = {"SUDO_USER": "alice"}
    set_argv = ("routes", "set", "dplbot", "http://10.0.0.5:8000", "--reason", "new grid", "--task-id", "T1")
    assert run_cli("--redis", url, *set_argv, env=alice).code == 0
    assert (
        run_cli("--redis", url, "routes", "delete", "dplbot", "--reason", "tool retired", env=alice).code == 0
    )

    result = run_cli("--redis", url, "debug", "history", "dplbot", "--json")

    assert result.code == 0, result.stderr
    trail = [
        (e["action"], e["actor"].split("@")[0], e["reason"], e["task_id"])
        for e in json.loads(result.stdout)["data"]["audit"]
    ]
    assert trail == [("set", "alice", "new grid", "T1"), ("delete", "alice", "tool retired", "")]
    human = run_cli("--redis", url, "debug", "history", "dplbot", env={"COLUMNS": "200"}).stdout
    assert "tool retired" in human and "alice@" in human


def test_history_without_an_aof_still_shows_the_audit_record_with_a_note(redis_server: RedisServer) -> None:
    redis_server.client().config_set("appendonly", "no")
    assert run_cli("--redis", redis_server.url, "routes", "set", "dplbot", "http://10.0.0.5:8000").code == 0

    result = run_cli("--redis", redis_server.url, "debug", "history", "dplbot", "--json")
    human = run_cli("--redis", redis_server.url, "debug", "history", "dplbot")

    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)["data"]
    assert data["aof"] is None and "appendonly off" in data["aof_note"]
    assert [e["action"] for e in data["audit"]] == ["set"]
    assert human.code == 0 and "audit record" in human.stdout and "appendonly off" in human.stderr


def test_history_of_an_unknown_tool_fails_as_routes_show_does(redis_server: RedisServer) -> None:
    history = run_cli("--redis", redis_server.url, "debug", "history", "nosuchtool")
    show = run_cli("--redis", redis_server.url, "routes", "show", "nosuchtool")
    assert history.code == show.code == 1
    assert len(history.stderr.strip().splitlines()) == 1 and "nosuchtool" in history.stderr


def test_history_of_a_hostile_tool_name_is_refused(redis_server: RedisServer) -> None:
    result = run_cli("--redis", redis_server.url, "debug", "history", "../etc")
    assert result.code == 2


def test_debug_redis_shows_replication_from_both_sides(redis_server: RedisServer) -> None:
    primary = redis_server.process
    replica = start_redis(redis_server.directory.parent / "replica", replica_of=(primary.host, primary.port))
    try:

        def linked() -> dict[str, object]:
            url = f"redis://{replica.host}:{replica.port}/0"
            result = run_cli("--redis", url, "debug", "redis", "--json")
            found: dict[str, object] = json.loads(result.stdout)["data"]["replication"]
            return found if found.get("master_link_status") == "up" else {}

        replication = wait_until(linked, "the replica's link to come up", timeout=10, interval=0.2)
        assert replication["role"] == "slave" and replication["master_link_status"] == "up"
        on_primary = json.loads(run_cli("--redis", redis_server.url, "debug", "redis", "--json").stdout)[
            "data"
        ]
        assert on_primary["replication"]["role"] == "master"
        assert on_primary["replication"]["connected_slaves"] == 1
        assert on_primary["persistence"]["aof_enabled"] == 1
    finally:
        replica.stop()
