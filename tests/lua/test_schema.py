"""Every value both Python and Lua hold is pinned once, in tests/fixtures/schema.json.

This is the Python side: the Redis key names, the tool-name rule, the backend grammar, the
settings' defaults that render passes to the Lua, and the shared dicts the config declares. The Lua
side is tests/lua/unit/test_schema.lua (run by test_unit.py); the drift tests below show it fails
when the Lua drifts. Beyond the pinned cases, a property test feeds the same generated URLs to
validate.backend() and backend.lua (tests/lua/unit/parse_backends.lua) and compares their readings.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from tests.lua import luaunit
from toolforgectl.adapters import render, routestore
from toolforgectl.core import config, validate
from toolforgectl.core.errors import ValidationError
from toolforgectl.core.models import Backend

PINNED = json.loads((REPO / "tests" / "fixtures" / "schema.json").read_text())
REDIS_NAMES = {name: value for name, value in PINNED.items() if name.isupper()}
SETTINGS = PINNED["settings"]


def default_fleet() -> config.Fleet:
    return config.parse("proxies: [{name: p1, address: 127.0.0.1}]\n", "fleet.yaml")


def test_python_route_store_uses_the_pinned_key_names() -> None:
    assert {name: getattr(routestore, name) for name in REDIS_NAMES} == REDIS_NAMES


def test_python_block_list_limits_are_the_pinned_ones() -> None:
    assert PINNED["block_limits"] == routestore.BLOCK_LIMITS


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
        parsed = validate.backend(pin["url"])
        assert parsed.is_name == (pin.get("kind") == "name")
        assert (parsed.url, parsed.scheme, str(parsed.host), parsed.port) == (
            pin["url"],
            pin["scheme"],
            pin["address"],
            pin["port"],
        )
    for url in grammar["refused"]:
        with pytest.raises(ValidationError):
            validate.backend(url)
    for written, canonical in grammar["canonicalized"].items():
        assert validate.backend(written).url == canonical


def test_python_route_rule_is_the_pinned_one() -> None:
    rule = PINNED["route"]
    for pattern in rule["compiles"]:
        assert validate.route(pattern) == pattern
    for pattern in rule["does_not_compile"] + rule["version_dependent"]:
        with pytest.raises(ValidationError):
            validate.route(pattern)


# First octets and groups at the edges of the grammar (unspecified, multicast, link-local, mapped).
_EDGE_OCTETS = [0, 1, 10, 127, 169, 223, 224, 239, 240, 255]
_EDGE_GROUPS = [0, 1, 0xFE80, 0xFEFF, 0xFF00, 0xFF02, 0xFFFF]


def _ipv4_text() -> st.SearchStrategy[str]:
    first = st.one_of(st.sampled_from(_EDGE_OCTETS), st.integers(0, 255)).map(str)
    octet = st.integers(0, 255).map(str)
    return st.builds(lambda *octets: ".".join(octets), first, octet, octet, octet)


def _ipv6_text() -> st.SearchStrategy[str]:
    """Around the eight groups a literal needs, with or without one "::", some in upper case."""
    first = st.one_of(st.sampled_from(_EDGE_GROUPS), st.integers(0, 0xFFFF))
    rest = st.lists(st.one_of(st.just(0), st.integers(0, 0xFFFF)), max_size=8)

    def text(head: int, tail: list[int], cut: int | None, upper: bool) -> str:
        parts = [f"{g:x}" for g in [head, *tail]]
        if cut is not None:
            cut = min(cut, len(parts))
            parts = [":".join(parts[:cut]) + ":", ":" + ":".join(parts[cut:])]
        body = ":".join(parts).replace(":::", "::")
        return body.upper() if upper else body

    return st.builds(text, first, rest, st.none() | st.integers(0, 8), st.booleans())


def _name_text() -> st.SearchStrategy[str]:
    """Near DNS names: short labels of letters, digits and hyphens (some empty, some all digits)."""
    label = st.text("aZ09-", max_size=5)
    return st.lists(label, min_size=1, max_size=4).map(".".join)


def _host() -> st.SearchStrategy[str]:
    malformed = st.one_of(
        st.text("0123456789abcdef:.", max_size=45).map(lambda a: f"[{a}]"),
        st.lists(st.sampled_from(["0", "00", "01", "256", "1", "x"]), max_size=5).map(".".join),
        st.sampled_from(["localhost", "[fe80::1%eth0]", "[1.2.3.4]", "::1", ""]),
    )
    return st.one_of(
        _ipv4_text(),
        _ipv6_text().map(lambda a: f"[{a}]"),
        st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
        _name_text(),
        malformed,
    )


def _backend_like() -> st.SearchStrategy[str]:
    # Mostly well-formed, so that many URLs are ones Python stores as they are.
    schemes = st.sampled_from(["http", "https", "http", "https", "HTTP", "ftp"])
    ports = st.one_of(
        st.integers(1, 65535).map(str),
        st.integers(0, 70000).map(str),
        st.sampled_from(["", "080", "00443", "-1", "8o"]),
    )
    suffixes = st.sampled_from(["", "", "", "", "", "/", "/x", "?", "#", " "])
    return st.builds(lambda s, h, p, x: f"{s}://{h}:{p}{x}", schemes, _host(), ports, suffixes)


def _python_reading(url: str) -> Backend | None:
    try:
        return validate.backend(url)
    except ValidationError:
        return None


@settings(max_examples=60)
@given(st.lists(_backend_like(), min_size=1, max_size=50))
def test_lua_reads_every_backend_as_python_does(urls: list[str]) -> None:
    """Beyond the pinned cases: what Python stores, Lua reads as the same peer; what it refuses, Lua refuses.

    A URL Python accepts but rewrites (trailing "/", upper-case scheme, a long IPv6 form) never
    reaches Redis as such; Lua may refuse it, or must read the same scheme, address and port.
    """
    done = subprocess.run(
        ["lua5.1", str(luaunit.UNIT / "parse_backends.lua"), str(REPO)],
        input=json.dumps(urls),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    for url, peer in zip(urls, json.loads(done.stdout), strict=True):
        if "[::ffff:" in url.lower():
            continue  # IPv4-mapped: Python 3.13 spells and classifies them differently from 3.11
        python = _python_reading(url)
        if python is None:
            assert peer is None, f"Lua accepts {url!r}, which Python refuses"
        elif peer is None:
            assert python.url != url, f"Lua refuses {url!r}, which Python stores as it is"
        else:
            host = peer["name"] if "name" in peer else ipaddress.ip_address(peer["host"].strip("[]"))
            lua = (peer["scheme"], host, peer["port"])
            assert (python.scheme, python.host, python.port) == lua, f"Lua reads {url!r} as {peer}"


def test_dataplane_defaults_are_the_pinned_lua_defaults() -> None:
    plane = default_fleet().dataplane
    values = {name: getattr(plane, name) for name in SETTINGS["defaults"]}
    as_json = {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}  # lists: tuples
    assert as_json == SETTINGS["defaults"]


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
        ("backend.lua", "o[1] >= 224", "o[1] >= 225", '"http://224.0.0.1:80" accepted'),
        ("shdict.lua", '"urlproxy_state"', '"urlproxy_status"', "dict names"),
        ("schema.lua", "referer = 100", "referer = 1000", "BLOCK_LIMITS"),
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
