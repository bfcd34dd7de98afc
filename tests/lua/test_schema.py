"""The Redis key schema has one owner per language; both must match tests/fixtures/schema.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import REPO
from toolforgectl.adapters import routestore

ROOT = REPO
PINNED = json.loads((ROOT / "tests" / "fixtures" / "schema.json").read_text())


def test_python_route_store_uses_the_pinned_key_names() -> None:
    assert {name: getattr(routestore, name) for name in PINNED} == PINNED


def test_lua_schema_uses_the_pinned_key_names() -> None:
    done = subprocess.run(
        ["lua5.1", str(ROOT / "tests" / "lua" / "schema_check.lua"), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_lua_schema_check_notices_a_drift(tmp_path: Path) -> None:
    (tmp_path / "lua" / "urlproxy").mkdir(parents=True)
    (tmp_path / "tests" / "fixtures").mkdir(parents=True)
    (tmp_path / "tests" / "fixtures" / "schema.json").write_text(json.dumps(PINNED))
    drifted = (ROOT / "lua" / "urlproxy" / "schema.lua").read_text().replace('"prefix:"', '"route:"')
    (tmp_path / "lua" / "urlproxy" / "schema.lua").write_text(drifted)
    done = subprocess.run(
        ["lua5.1", str(ROOT / "tests" / "lua" / "schema_check.lua"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "PREFIX" in done.stderr
