"""`toolforgectl hiera show|set` as a process: the file backend in a git checkout, the lock on Redis."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import RedisServer, run_cli

KEY = "profile::toolforge::active_proxy_host"
DOCUMENT = f"# hiera of the lab\n{KEY}: proxy-01\nprofile::other: 3\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def config(tmp_path: Path, redis_server: RedisServer) -> Path:
    """A fleet whose hiera is a committed file in a git checkout."""
    repo = tmp_path / "hiera"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "toolforge.yaml").write_text(DOCUMENT)
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    path = tmp_path / "fleet.yaml"
    path.write_text(
        f"proxies: [{{name: proxy-01, address: 127.0.0.1, redis: '{redis_server.url}'}}]\n"
        f"hiera: {{backend: file, path: '{repo / 'toolforge.yaml'}'}}\n"
        f"operations: {{state_dir: '{tmp_path / 'runs'}', log: {{file: '{tmp_path / 'sal.log'}'}}}}\n"
    )
    return path


def hiera_file(config: Path) -> Path:
    return config.parent / "hiera" / "toolforge.yaml"


def test_show_prints_every_key_or_one(config: Path) -> None:
    every = run_cli("--config", str(config), "hiera", "show", "--json")
    one = run_cli("--config", str(config), "hiera", "show", KEY)
    missing = run_cli("--config", str(config), "hiera", "show", "no::such")

    assert json.loads(every.stdout)["data"]["data"] == {KEY: "proxy-01", "profile::other": 3}
    assert one.code == 0 and "proxy-01" in one.stdout
    assert missing.code == 1 and "has no key 'no::such'" in missing.stderr


def test_without_a_hiera_section_it_says_so_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("proxies: [{name: proxy-01}]\n")
    done = run_cli("--config", str(path), "hiera", "show")
    assert done.code == 2 and "no `hiera:` section" in done.stderr


def test_dry_run_shows_the_diff_and_changes_nothing(config: Path, redis_server: RedisServer) -> None:
    keys = redis_server.client().keys("*")
    head = git(config.parent / "hiera", "rev-parse", "HEAD")

    done = run_cli("--config", str(config), "hiera", "set", KEY, "proxy-02", "--dry-run")

    assert done.code == 0, done.stderr
    shown = [line.strip() for line in done.stderr.splitlines()]
    assert f"-{KEY}: proxy-01" in shown and f"+{KEY}: proxy-02" in shown
    assert hiera_file(config).read_text() == DOCUMENT
    assert git(config.parent / "hiera", "rev-parse", "HEAD") == head
    assert redis_server.client().keys("*") == keys
    assert not (config.parent / "sal.log").exists()


def test_without_a_terminal_and_without_yes_it_refuses(config: Path) -> None:
    done = run_cli("--config", str(config), "hiera", "set", KEY, "proxy-02")

    assert done.code == 2
    assert "pass --yes" in done.stderr
    assert hiera_file(config).read_text() == DOCUMENT


def test_set_commits_the_change_with_the_reason_and_audits_it(
    config: Path, redis_server: RedisServer
) -> None:
    done = run_cli(
        "--config", str(config), "hiera", "set", KEY, "proxy-02", "--yes",
        "--reason", "move to proxy-02", "--task-id", "T99", "--json",
    )  # fmt: skip

    assert done.code == 0, done.stderr
    data = json.loads(done.stdout)["data"]
    assert data["result"] == "ok"
    assert data["steps"][0]["changes"] == [{"target": f"hiera {KEY}", "old": "proxy-01", "new": "proxy-02"}]
    assert hiera_file(config).read_text() == DOCUMENT.replace("proxy-01", "proxy-02")
    message = git(config.parent / "hiera", "log", "-1", "--format=%B")
    assert message.startswith(f"hiera: set {KEY} to 'proxy-02'\n\nmove to proxy-02 - ")
    assert f"- T99\ntoolforgectl run {data['run']}" in message
    audit = [json.loads(line) for line in Path(data["audit"]).read_text().splitlines()]
    assert audit[0]["reason"] == "move to proxy-02" and audit[-1]["result"] == "ok"
    assert redis_server.client().get("toolforgectl:lock:hiera") is None

    again = run_cli("--config", str(config), "hiera", "set", KEY, "proxy-02", "--json")
    assert again.code == 0, "nothing to do needs no confirmation"
    assert json.loads(again.stdout)["data"]["steps"][0]["status"] == "already done"


def test_yaml_values_are_typed_only_with_yaml(config: Path) -> None:
    done = run_cli("--config", str(config), "hiera", "set", "profile::other", "4", "--yaml", "--yes")
    assert done.code == 0, done.stderr
    assert "profile::other: 4\n" in hiera_file(config).read_text()
    text = run_cli("--config", str(config), "hiera", "set", "profile::other", "4", "--yes")
    assert text.code == 0
    assert "profile::other: '4'\n" in hiera_file(config).read_text()
