"""A command line typer cannot parse: one line that says how to fix it, exit 2 (docs/cli.md)."""

from __future__ import annotations

import pytest

from tests.conftest import RedisServer, run_cli


@pytest.mark.parametrize(
    "misplaced",
    [("--config", "fleet.yaml"), ("--redis", "URL"), ("--proxy", "proxy-02"), ("--config=fleet.yaml",)],
    ids=lambda argv: argv[0],
)
def test_a_global_option_after_the_command_says_to_put_it_first(
    redis_server: RedisServer, misplaced: tuple[str, ...]
) -> None:
    result = run_cli("--redis", redis_server.url, "routes", "list", *misplaced)
    assert result.code == 2
    option = misplaced[0].split("=")[0]
    assert result.stderr == (
        f"toolforgectl: error: {option} is a global option: put it before the command,"
        f" as in `toolforgectl {option} VALUE routes list`\n"
    )


def test_the_same_global_option_before_the_command_works(redis_server: RedisServer) -> None:
    redis_server.client().hset("prefix:dplbot", ".*", "http://127.0.0.1:8000")
    result = run_cli("--redis", redis_server.url, "routes", "list")
    assert result.code == 0 and "dplbot" in result.stdout


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (("routes", "lsit"), "toolforgectl routes --help"),
        (("routes", "show"), "toolforgectl routes show --help"),
        (("--no-such-flag",), "toolforgectl --help"),
    ],
)
def test_a_usage_error_is_one_line_pointing_at_the_help(argv: tuple[str, ...], hint: str) -> None:
    result = run_cli(*argv)
    assert result.code == 2
    assert result.stderr.startswith("toolforgectl: error:") and result.stderr.count("\n") == 1
    assert f"(see `{hint}`)" in result.stderr
    assert result.stdout == ""
