"""`toolforgectl lint`, the CI gate: passes on this repo, fails with file:line on each kind of breakage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def trees(tmp_path: Path) -> Path:
    """Writable copies of templates/ and lua/ to break."""
    for name in ("templates", "lua"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def lint(trees: Path) -> tuple[int, str]:
    done = run_cli("lint", "--templates", str(trees / "templates"), "--lua", str(trees / "lua"))
    return done.code, done.stderr


def test_lint_passes_on_this_repository() -> None:
    done = run_cli("lint", "--json")
    assert done.code == 0, done.stderr
    assert '"passed"' in done.stdout and "luacheck" in done.stdout


def test_lint_names_the_template_line_of_an_undefined_setting(trees: Path) -> None:
    site = trees / "templates" / "nginx" / "urlproxy.conf.j2"
    lines = site.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if "{{ dp.websocket_timeout }}" in line)
    lines[number - 1] = lines[number - 1].replace("dp.websocket_timeout", "dp.websocket_timeuot")
    site.write_text("\n".join(lines) + "\n")
    code, stderr = lint(trees)
    assert code == 1
    assert f"{site}:{number}:" in stderr and "websocket_timeuot" in stderr


def test_lint_maps_an_nginx_error_back_to_the_template(trees: Path) -> None:
    site = trees / "templates" / "nginx" / "urlproxy.conf.j2"
    site.write_text(site.read_text().replace("    keepalive {{", "    keepalive_bogus {{"))
    number = next(i for i, line in enumerate(site.read_text().splitlines(), 1) if "keepalive_bogus" in line)
    code, stderr = lint(trees)
    assert code == 1
    assert f"{site}:{number}: unknown directive" in stderr


def test_lint_runs_init_by_lua_which_nginx_t_skips(trees: Path) -> None:
    init = trees / "lua" / "urlproxy_init.lua"
    init.write_text(init.read_text().replace('require "routelist"', 'require "no_such_module"'))
    code, stderr = lint(trees)
    assert code == 1
    assert f"{init}:" in stderr and "no_such_module" in stderr


def test_lint_reports_luacheck_findings(trees: Path) -> None:
    module = trees / "lua" / "backend.lua"
    module.write_text(module.read_text().replace("local _M = {}", "local _M = {}\nlocal unused_thing = 1"))
    code, stderr = lint(trees)
    assert code == 1
    assert f"{module}:" in stderr and "unused_thing" in stderr


def test_lint_reports_a_broken_sample_config(trees: Path) -> None:
    sample = trees / "templates" / "samples" / "path-mode.yaml"
    sample.write_text(sample.read_text() + "dataplane:\n  routing: sideways\n")
    code, stderr = lint(trees)
    assert code == 1
    assert str(sample) in stderr and "routing" in stderr
