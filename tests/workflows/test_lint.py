"""`toolforgectl lint`, the CI gate: passes on this repo, fails with file:line on each kind of breakage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

ROOT = REPO


@pytest.fixture
def trees(tmp_path: Path) -> Path:
    """Writable copies of templates/ and lua/ to break."""
    for name in ("templates", "lua"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def failing_lint(trees: Path) -> str:
    """Lint the broken copies; it must fail (exit 1), and its stderr is returned."""
    done = run_cli("lint", "--templates", str(trees / "templates"), "--lua", str(trees / "lua"))
    assert done.code == 1, done.stderr
    return done.stderr


def break_file(path: Path, old: str, new: str) -> Path:
    """Replace `old` in `path` by `new`; fails here, not in lint, if `old` is no longer there."""
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new))
    return path


def test_lint_passes_on_this_repository() -> None:
    done = run_cli("lint", "--json")
    assert done.code == 0, done.stderr
    assert '"passed"' in done.stdout and "luacheck" in done.stdout and '"redis"' in done.stdout


def test_lint_names_the_template_line_of_an_undefined_setting(trees: Path) -> None:
    site = trees / "templates" / "nginx" / "urlproxy.conf.j2"
    lines = site.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if "{{ dp.connect_timeout }}" in line)
    lines[number - 1] = lines[number - 1].replace("dp.connect_timeout", "dp.connect_timeuot")
    site.write_text("\n".join(lines) + "\n")
    stderr = failing_lint(trees)
    assert f"{site}:{number}:" in stderr and "connect_timeuot" in stderr


def test_lint_maps_an_nginx_error_back_to_the_template(trees: Path) -> None:
    site = break_file(
        trees / "templates" / "nginx" / "urlproxy.conf.j2", "    keepalive {{", "    keepalive_bogus {{"
    )
    number = next(i for i, line in enumerate(site.read_text().splitlines(), 1) if "keepalive_bogus" in line)
    stderr = failing_lint(trees)
    assert f"{site}:{number}: unknown directive" in stderr


def test_lint_starts_redis_on_the_rendered_redis_conf_and_names_the_template_line(trees: Path) -> None:
    template = trees / "templates" / "redis" / "redis.conf.j2"
    conf = break_file(template, "maxmemory-policy noeviction", "maxmemory-policy never")
    number = next(i for i, line in enumerate(conf.read_text().splitlines(), 1) if "policy never" in line)
    stderr = failing_lint(trees)
    assert f"{conf}:{number}: argument(s) must be one of the following" in stderr


def test_lint_runs_init_by_lua_which_nginx_t_skips(trees: Path) -> None:
    init = break_file(
        trees / "lua" / "urlproxy" / "startup.lua", 'require "urlproxy.routelist"', 'require "no_such_module"'
    )
    stderr = failing_lint(trees)
    assert f"{init}:" in stderr and "no_such_module" in stderr


def test_lint_reports_luacheck_findings(trees: Path) -> None:
    module = break_file(
        trees / "lua" / "urlproxy" / "backend.lua", "local _M = {}", "local _M = {}\nlocal unused_thing = 1"
    )
    stderr = failing_lint(trees)
    assert f"{module}:" in stderr and "unused_thing" in stderr


def test_lint_reports_a_broken_sample_config(trees: Path) -> None:
    sample = trees / "templates" / "samples" / "path-mode.yaml"
    sample.write_text(sample.read_text() + "dataplane:\n  routing: sideways\n")
    stderr = failing_lint(trees)
    assert str(sample) in stderr and "routing" in stderr


def test_lint_reports_a_dns_section_whose_command_uses_an_unknown_placeholder(trees: Path) -> None:
    sample = trees / "templates" / "samples" / "path-mode.yaml"
    text = sample.read_text().replace("  zone: wmflabs.org.\n", "  backend: command\n  command: set {host}\n")
    sample.write_text(text)
    stderr = failing_lint(trees)
    assert f"{sample}:" in stderr and "dns.command uses {host}" in stderr
