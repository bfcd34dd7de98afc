"""`toolforgectl routes` as an operator runs it: a real process against a real Redis."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import RedisServer, run_cli

HOSTILE = [
    ("routes", "set", "../x", "http://10.0.0.5:8000"),
    ("routes", "set", "a b", "http://10.0.0.5:8000"),
    ("routes", "set", "dplbot", "http://u:p@127.0.0.1:1"),
    ("routes", "set", "dplbot", "ftp://127.0.0.1:21"),
    ("routes", "set", "dplbot", "http://10.0.0.5:0"),
    ("routes", "set", "dplbot", "http://10.0.0.5:70000"),
    ("routes", "set", "x" * 10_000, "http://10.0.0.5:8000"),
    ("routes", "set", "dplbot", "http://10.0.0.5:8000", "--route", "(" * 10_000),
    ("routes", "set", "dplbot", "http://" + "9" * 10_000 + ":1"),
]


def test_set_then_show_reports_the_route(redis_server: RedisServer) -> None:
    set_result = run_cli("--redis", redis_server.url, "routes", "set", "dplbot", "http://10.0.0.5:8000")
    assert set_result.code == 0, set_result.stderr
    assert "dplbot" in set_result.stdout and "http://10.0.0.5:8000" in set_result.stdout
    assert redis_server.client().hgetall("prefix:dplbot") == {".*": "http://10.0.0.5:8000"}

    shown = run_cli("--redis", redis_server.url, "routes", "show", "dplbot", "--json")
    assert shown.code == 0, shown.stderr
    data = json.loads(shown.stdout)["data"]
    assert data["routes"][0]["route"] == ".*"
    assert data["routes"][0]["backend"] == "http://10.0.0.5:8000"


def test_show_reports_whether_the_backend_answers(redis_server: RedisServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        redis_server.client().hset("prefix:up", ".*", f"http://127.0.0.1:{port}")
        redis_server.client().hset("prefix:up", "^/down", "http://127.0.0.1:1")
        result = run_cli("--redis", redis_server.url, "routes", "show", "up", "--json")
    rows = {row["route"]: row for row in json.loads(result.stdout)["data"]["routes"]}
    assert rows[".*"]["reachable"] is True
    assert rows["^/down"]["reachable"] is False and rows["^/down"]["error"]


def test_routes_written_with_redis_cli_are_shown(redis_server: RedisServer) -> None:
    redis_server.client().hset("prefix:foo", ".*", "http://10.0.0.1:5000")
    result = run_cli("--redis", redis_server.url, "routes", "show", "foo", "--no-probe")
    assert result.code == 0, result.stderr
    assert "http://10.0.0.1:5000" in result.stdout


def test_show_of_a_tool_without_routes_fails_clearly(redis_server: RedisServer) -> None:
    result = run_cli("--redis", redis_server.url, "routes", "show", "nosuchtool")
    assert result.code == 1
    assert result.stderr.strip().count("\n") == 0 and "no routes" in result.stderr


@pytest.mark.parametrize("argv", HOSTILE, ids=lambda argv: " ".join(argv)[:40])
def test_hostile_input_is_refused_and_changes_nothing(
    redis_server: RedisServer, argv: tuple[str, ...]
) -> None:
    redis_server.client().hset("prefix:dplbot", ".*", "http://10.0.0.5:7000")
    before = redis_server.client().hgetall("prefix:dplbot")
    result = run_cli("--redis", redis_server.url, *argv)
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("toolforgectl: error:")
    assert len(result.stderr) < 400  # a 10 kB input is not echoed back whole
    assert redis_server.client().hgetall("prefix:dplbot") == before
    assert redis_server.client().dbsize() == 1


def test_dry_run_says_what_would_change_and_writes_nothing(redis_server: RedisServer) -> None:
    result = run_cli(
        "--redis", redis_server.url, "routes", "set", "dplbot", "http://10.0.0.5:8000", "--dry-run"
    )
    assert result.code == 0 and "would set" in result.stdout
    assert redis_server.client().dbsize() == 0


def test_delete_removes_one_route_or_all(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.hset("prefix:dplbot", mapping={".*": "http://10.0.0.5:1", "^/api": "http://10.0.0.5:2"})
    one = run_cli("--redis", redis_server.url, "routes", "delete", "dplbot", "--route", "^/api")
    assert one.code == 0 and client.hgetall("prefix:dplbot") == {".*": "http://10.0.0.5:1"}
    everything = run_cli("--redis", redis_server.url, "routes", "delete", "dplbot")
    assert everything.code == 0 and not client.exists("prefix:dplbot")
    again = run_cli("--redis", redis_server.url, "routes", "delete", "dplbot")
    assert again.code == 1


def test_export_then_import_restores_every_route_and_redirect(
    redis_server: RedisServer, tmp_path: pytest.TempPathFactory
) -> None:
    client = redis_server.client()
    client.hset("prefix:a", mapping={".*": "http://10.0.0.5:1", "^/x": "http://10.0.0.5:2"})
    client.hset("prefix:b", ".*", "http://10.0.0.5:3")
    client.hset("redirect:a", ".*", "a.toolforge.org")  # as registerCanonical records it
    exported = run_cli("--redis", redis_server.url, "routes", "export")
    assert exported.code == 0
    assert json.loads(exported.stdout)["redirects"] == {"a": {".*": "a.toolforge.org"}}
    client.flushall()
    imported = run_cli("--redis", redis_server.url, "routes", "import", "-", stdin=exported.stdout)
    assert imported.code == 0, imported.stderr
    assert "4 added, 0 changed, 0 unchanged, 0 kept" in imported.stdout
    assert "did redirect: a '.*' -> a.toolforge.org" in imported.stdout
    assert client.hgetall("prefix:a") == {".*": "http://10.0.0.5:1", "^/x": "http://10.0.0.5:2"}
    assert client.hgetall("prefix:b") == {".*": "http://10.0.0.5:3"}
    assert client.hgetall("redirect:a") == {".*": "a.toolforge.org"}
    assert run_cli("--redis", redis_server.url, "routes", "export").stdout == exported.stdout


def test_show_lists_a_tools_redirects(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.hset("prefix:a", ".*", "http://10.0.0.5:1")
    client.hset("redirect:a", ".*", "a.toolforge.org")
    client.hset("redirect:only-redirect", ".*", "only-redirect.toolforge.org")
    shown = run_cli("--redis", redis_server.url, "routes", "show", "a", "--no-probe")
    assert shown.code == 0, shown.stderr
    assert "redirects of a" in shown.stdout and "a.toolforge.org" in shown.stdout
    alone = run_cli("--redis", redis_server.url, "routes", "show", "only-redirect", "--no-probe", "--json")
    data = json.loads(alone.stdout)["data"]
    assert (data["routes"], data["redirects"]) == ([], {".*": "only-redirect.toolforge.org"})


def test_list_json_has_every_tool(redis_server: RedisServer) -> None:
    redis_server.client().hset("prefix:a", ".*", "http://10.0.0.5:1")
    redis_server.client().hset("prefix:b", ".*", "http://10.0.0.5:2")
    result = run_cli("--redis", redis_server.url, "routes", "list", "--json")
    envelope = json.loads(result.stdout)
    assert envelope["data"] == {"a": {".*": "http://10.0.0.5:1"}, "b": {".*": "http://10.0.0.5:2"}}


def test_unreachable_redis_is_one_line_and_exit_3() -> None:
    result = run_cli("--redis", "redis://127.0.0.1:1/0", "routes", "list")
    assert result.code == 3
    assert "cannot reach Redis" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_routes_with_markup_characters_are_printed_verbatim(redis_server: RedisServer) -> None:
    redis_server.client().hset("prefix:a", "^/[a-z]+", "http://10.0.0.5:1")
    result = run_cli("--redis", redis_server.url, "routes", "list")
    assert "^/[a-z]+" in result.stdout


def test_a_long_route_and_backend_are_printed_whole_through_a_pipe(redis_server: RedisServer) -> None:
    # What redis-cli or the original's grid may have written: longer than any terminal line.
    tool = "t" * 63
    route = "^/api/v1/" + "/".join(f"segment{i}" for i in range(20)) + "$"
    backend = "http://" + ".".join(["a-rather-long-host-name-label"] * 6) + ":65535"
    redis_server.client().hset(f"prefix:{tool}", route, backend)
    listed = run_cli("--redis", redis_server.url, "routes", "list")
    shown = run_cli("--redis", redis_server.url, "routes", "show", tool, "--no-probe")
    for result in (listed, shown):
        assert result.code == 0, result.stderr
        assert route in result.stdout and backend in result.stdout and "…" not in result.stdout
    row = next(line for line in listed.stdout.splitlines() if line.startswith(tool))
    assert row.split() == [tool, route, backend], "one row per route, as awk reads it"


def _audit(redis_server: RedisServer, tool: str) -> list[dict[str, str]]:
    return [fields for _, fields in redis_server.client().xrange(f"toolforgectl:audit:{tool}")]


def test_setting_the_current_backend_says_unchanged_and_writes_nothing(redis_server: RedisServer) -> None:
    argv = ("--redis", redis_server.url, "routes", "set", "dplbot", "http://10.0.0.5:8000")
    assert run_cli(*argv).code == 0
    again = run_cli(*argv)
    as_json = json.loads(run_cli(*argv, "--json").stdout)["data"]
    assert again.code == 0 and again.stdout.startswith("unchanged: dplbot")
    assert as_json[0]["changed"] is False
    client = redis_server.client()
    assert client.get("toolforgectl:routes:version") == "1", "no version bump, no cache flush"
    assert len(_audit(redis_server, "dplbot")) == 1
    assert client.info("commandstats")["cmdstat_hset"]["calls"] == 1


def test_a_write_is_attributed_to_the_user_behind_sudo_with_reason_and_task(
    redis_server: RedisServer,
) -> None:
    result = run_cli(
        "--redis", redis_server.url, "routes", "set", "dplbot", "http://10.0.0.5:8000",
        "--reason", "move to the new grid", "--task-id", "T4242",
        env={"SUDO_USER": "alice", "USER": "root", "LOGNAME": "root"},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    [entry] = _audit(redis_server, "dplbot")
    assert (entry["actor"], entry["reason"], entry["task_id"]) == (
        f"alice@{socket.gethostname()}",
        "move to the new grid",
        "T4242",
    )


def test_without_sudo_the_login_user_is_the_actor(redis_server: RedisServer) -> None:
    env = {"SUDO_USER": "", "LOGNAME": "bob", "USER": "bob"}
    assert run_cli("--redis", redis_server.url, "routes", "set", "a", "http://10.0.0.5:1", env=env).code == 0
    assert run_cli("--redis", redis_server.url, "routes", "delete", "a", env=env).code == 0
    assert [e["actor"] for e in _audit(redis_server, "a")] == [f"bob@{socket.gethostname()}"] * 2


def test_a_reason_that_would_break_the_audit_line_is_refused(redis_server: RedisServer) -> None:
    argv = ("routes", "set", "a", "http://10.0.0.5:1", "--reason", "one\ntwo")
    result = run_cli("--redis", redis_server.url, *argv)
    assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert redis_server.client().dbsize() == 0


def _export(routes: dict[str, dict[str, str]]) -> str:
    return json.dumps({"format": "toolforgectl-routes/1", "routes": routes})


def test_import_recaps_added_changed_unchanged_and_kept(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.hset("prefix:same", ".*", "http://10.0.0.5:1")
    client.hset("prefix:moved", ".*", "http://10.0.0.5:2")
    client.hset("prefix:other", ".*", "http://10.0.0.5:3")
    routes = {
        "same": {".*": "http://10.0.0.5:1"},
        "moved": {".*": "http://10.0.0.5:20"},
        "new": {".*": "http://10.0.0.5:4"},
    }
    argv = ("--redis", redis_server.url, "routes", "import", "-", "--reason", "restore")
    human = run_cli(*argv, stdin=_export(routes))
    assert human.code == 0, human.stderr
    assert "1 added, 1 changed, 1 unchanged, 1 kept" in human.stdout
    recap = json.loads(run_cli(*argv, "--json", stdin=_export(routes)).stdout)["data"]["recap"]
    assert recap == {"added": 0, "changed": 0, "unchanged": 3, "kept": 1}
    assert client.hget("prefix:moved", ".*") == "http://10.0.0.5:20"
    assert client.hget("prefix:other", ".*") == "http://10.0.0.5:3"
    assert client.get("toolforgectl:routes:version") == "2", "only the two changes were written"
    assert [e["reason"] for e in _audit(redis_server, "new")] == ["restore"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "toolforgectl-routes/99", "routes": {}}', "unknown format 'toolforgectl-routes/99'"),
        ('{"format": "toolforgectl-routes/1", "format": "toolforgectl-routes/1", "routes": {}}', "twice"),
        (
            '{"format": "toolforgectl-routes/1", "routes": {"a": {".*": "http://10.0.0.5:1"}, "a": {}}}',
            "twice",
        ),
        (
            '{"format": "toolforgectl-routes/1", "routes": {"a": {"x": "http://10.0.0.5:1", "x": "x"}}}',
            "twice",
        ),
        ('{"routes": {"a": {".*": "http://10.0.0.5:1"}}}', "as written by `routes export`"),
        (
            '{"format": "toolforgectl-routes/2", "routes": {}, "redirects": {"a": {".*": "https://evil/"}}}',
            "domain name 'https://evil/' is not",
        ),
        ('{"format": "toolforgectl-routes/2", "routes": {}}', "as written by `routes export`"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"format": "toolforgectl-routes/1", "routes": {"a": {".*": "http://10.0.0.5:1"}', "not JSON"),
    ],
    ids=[
        "unknown-format",
        "duplicate-format",
        "duplicate-tool",
        "duplicate-route",
        "no-format",
        "bad-redirect-host",
        "v2-without-redirects",
        "deep",
        "cut",
    ],
)
def test_import_refuses_malformed_input_in_one_line_and_writes_nothing(
    redis_server: RedisServer, text: str, message: str
) -> None:
    result = run_cli("--redis", redis_server.url, "routes", "import", "-", stdin=text)
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert len(result.stderr) < 400
    assert redis_server.client().dbsize() == 0


def test_import_of_a_file_that_is_not_utf8_is_one_line(redis_server: RedisServer, tmp_path: Path) -> None:
    latin1 = tmp_path / "routes.json"
    text = '{"format": "toolforgectl-routes/1", "routes": {"a": {".*": "http://10.0.0.5:1"}}} // café'
    latin1.write_bytes(text.encode("latin-1"))
    result = run_cli("--redis", redis_server.url, "routes", "import", str(latin1))
    assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not UTF-8" in result.stderr and redis_server.client().dbsize() == 0


def test_import_failing_part_way_says_how_many_routes_were_written(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.set("prefix:b", "not a hash")  # Redis refuses the second write (WRONGTYPE)
    routes = {tool: {".*": f"http://10.0.0.5:{port}"} for tool, port in (("a", 1), ("b", 2), ("c", 3))}
    result = run_cli("--redis", redis_server.url, "routes", "import", "-", stdin=_export(routes))
    assert result.code == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert "import stopped after 1 of 3 routes (1 written)" in result.stderr, result.stderr
    assert client.hgetall("prefix:a") == {".*": "http://10.0.0.5:1"} and not client.exists("prefix:c")


@pytest.mark.parametrize(
    ("route", "said"),
    [
        ("\\u0041", "is not a regex nginx can use (PCRE: PCRE does not support"),
        ("^/x{,3}", "has {,3}, which PCRE versions read differently"),
    ],
)
def test_set_refuses_a_route_python_accepts_but_nginx_reads_otherwise(
    redis_server: RedisServer, route: str, said: str
) -> None:
    argv = ("--redis", redis_server.url, "routes", "set", "t", "http://10.0.0.5:8000")
    result = run_cli(*argv, "--route", route)
    assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert said in result.stderr
    assert redis_server.client().dbsize() == 0


def _filled(redis_server: RedisServer, tool: str, count: int) -> None:
    """`tool` has `count` routes ^/0/, ^/1/, ... (written directly, as another client would)."""
    for number in range(count):
        redis_server.client().hset(f"prefix:{tool}", f"^/{number}/", "http://10.0.0.5:8000")


def test_set_refuses_a_route_past_the_per_tool_cap(redis_server: RedisServer) -> None:
    _filled(redis_server, "greedy", 16)
    argv = ("--redis", redis_server.url, "routes", "set", "greedy", "http://10.0.0.5:9000")
    refused = run_cli(*argv, "--route", "^/one-more/")
    assert refused.code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "tool greedy already has 16 routes, the most one tool may have" in refused.stderr
    assert redis_server.client().hlen("prefix:greedy") == 16
    assert run_cli(*argv, "--route", "^/3/").code == 0, "a route the tool has can still move"


def test_the_fleet_configs_cap_applies(redis_server: RedisServer, tmp_path: Path) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(
        f"proxies: [{{name: p1, redis: '{redis_server.url}'}}]\ndataplane: {{max_routes_per_tool: 2}}\n"
    )
    _filled(redis_server, "small", 2)
    for extra in ((), ("--redis", redis_server.url)):  # --redis with --config keeps the config's cap
        argv = ("--config", str(config), *extra, "routes", "set", "small", "http://10.0.0.5:9000")
        refused = run_cli(*argv, "--route", "^/x/")
        assert refused.code == 2 and "(dataplane.max_routes_per_tool is 2)" in refused.stderr


@pytest.mark.parametrize(("stored", "imported"), [(0, 17), (15, 2)])
def test_import_refuses_a_file_that_would_put_a_tool_past_the_cap(
    redis_server: RedisServer, stored: int, imported: int
) -> None:
    _filled(redis_server, "greedy", stored)
    routes = {f"^/new-{number}/": "http://10.0.0.5:8000" for number in range(imported)}
    export = _export({"fine": {".*": "http://10.0.0.5:8000"}, "greedy": routes})
    result = run_cli("--redis", redis_server.url, "routes", "import", "-", stdin=export)
    assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "tool greedy would have 17 routes, more than the 16 one tool may have" in result.stderr
    assert "nothing was imported" in result.stderr
    assert redis_server.client().hlen("prefix:greedy") == stored
    assert not redis_server.client().exists("prefix:fine")
