"""The data plane's Lua rules without nginx: freshness, invalidation, back-off, matching, parsing.

Each tests/lua/unit/test_*.lua file is one test here, run under lua5.1 with a small `ngx` shim
(tests/lua/unit/ngx_shim.lua: a clock the test sets, shared dicts, a scripted Redis); a failure
lists the failed cases by name. test_urlproxy.py checks the same behaviour end to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lua import luaunit

FILES = sorted(luaunit.UNIT.glob("test_*.lua"))


def test_every_rule_area_has_a_lua_test_file() -> None:
    names = {path.stem for path in FILES}
    assert {"test_routecache", "test_watcher", "test_redisconn", "test_urlproxy", "test_backend"} <= names
    assert {"test_blocks", "test_metrics"} <= names


@pytest.mark.parametrize("lua_file", FILES, ids=lambda path: path.stem)
def test_lua_unit_file(lua_file: Path) -> None:
    run = luaunit.run(lua_file)
    assert run.returncode == 0 and not run.failed, run.report()
    assert run.planned > 0 and len(run.passed) == run.planned, run.report()
