"""Every value both Python and Lua hold is pinned once, in tests/fixtures/schema.json.

This is the Python side: the Redis key names, the tool-name rule, the backend grammar, the
settings' defaults that render passes to the Lua, and the shared dicts the config declares. The Lua
side is tests/lua/unit/test_schema.lua (run by test_unit.py); the drift tests below show it fails
when the Lua drifts.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.lua import luaunit
from toolforgectl.adapters import render, routestore
from toolforgectl.core import config, validate
from toolforgectl.core.errors import ValidationError

PINNED = json.loads((REPO / "tests" / "fixtures" / "schema.json").read_text())
REDIS_NAMES = {name: value for name, value in PINNED.items() if name.isupper()}
SETTINGS = PINNED["settings"]


def default_fleet() -> config.Fleet:
    return config.parse("proxies: [{name: p1, address: 127.0.0.1}]\n", "fleet.yaml")


def test_python_route_store_uses_the_pinned_key_names() -> None:
    assert {name: getattr(routestore, name) for name in REDIS_NAMES} == REDIS_NAMES


def test_python_tool_name_rule_is_the_pinned_one() -> None:
    rule = PINNED["tool_name"]
    assert (validate._TOOL_NAME.pattern, validate.TOOL_NAME_MAX) == (rule["pattern"], rule["max_length"])
    for name in rule["valid"]:
        assert validate.tool_name(name) == name
    for name in rule["invalid"]:
        with pytest.raises(ValidationError):
            validate.tool_name(name)


def test_python_backend_grammar_is_the_pinned_one() -> None:
    grammar = PINNED["backend"]
    for pin in grammar["accepted"]:
        assert validate.backend(pin["url"]) == pin["url"]
    for url in grammar["refused"]:
        with pytest.raises(ValidationError):
            validate.backend(url)
    for given, canonical in grammar["canonicalized"].items():
        assert validate.backend(given) == canonical


def test_dataplane_defaults_are_the_pinned_lua_defaults() -> None:
    plane = default_fleet().dataplane
    assert {name: getattr(plane, name) for name in SETTINGS["defaults"]} == SETTINGS["defaults"]


def test_render_passes_every_lua_setting_and_nothing_else(tmp_path: Path) -> None:
    fleet = default_fleet()
    layout = render.Layout.under(tmp_path)
    written = render.lua_settings(fleet.proxy(None), fleet.dataplane, layout)
    assert set(written) == set(SETTINGS["defaults"]) | set(SETTINGS["per_proxy"])
    assert {name: written[name] for name in SETTINGS["defaults"]} == SETTINGS["defaults"]


def test_rendered_config_declares_the_pinned_shared_dicts(tmp_path: Path) -> None:
    files = render.render_proxy(default_fleet(), None, render.Layout.under(tmp_path))
    declared = re.findall(r"^lua_shared_dict (\S+) ", files["urlproxy.conf"], re.MULTILINE)
    assert sorted(declared) == PINNED["shared_dicts"]


def test_only_shdict_lua_names_shared_dicts_and_their_keys() -> None:
    literal_key = re.compile(r"""ngx\.shared|:(?:get|set|add|replace|incr|delete|safe_\w+)\(\s*["']""")
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / "lua").rglob("*.lua"))
        if path.name != "shdict.lua"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if literal_key.search(line)
    ]
    assert not offenders


@pytest.mark.parametrize(
    ("module", "before", "after", "named"),
    [
        ("schema.lua", '"prefix:"', '"route:"', "schema.lua PREFIX"),
        ("schema.lua", "{0,61}", "{0,62}", "TOOL_NAME"),
        ("settings.lua", "cache_ttl = 60", "cache_ttl = 30", "cache_ttl"),
        ("backend.lua", "parts[1] >= 224", "parts[1] >= 225", '"http://224.0.0.1:80" accepted'),
        ("shdict.lua", '"urlproxy_state"', '"urlproxy_status"', "dict names"),
    ],
)
def test_lua_side_notices_a_drift(tmp_path: Path, module: str, before: str, after: str, named: str) -> None:
    shutil.copytree(REPO / "lua", tmp_path / "lua")
    (tmp_path / "tests" / "fixtures").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "fixtures" / "schema.json", tmp_path / "tests" / "fixtures")
    drifted = tmp_path / "lua" / "urlproxy" / module
    assert before in drifted.read_text()
    drifted.write_text(drifted.read_text().replace(before, after))
    run = luaunit.run(luaunit.UNIT / "test_schema.lua", root=tmp_path)
    assert run.returncode == 1 and len(run.failed) == 1
    assert named in run.failed[0]
