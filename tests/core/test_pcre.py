"""Routes compile with the PCRE library nginx's Lua module links, whichever of the two it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolforgectl.core import pcre


def _library(kind: type[pcre.Pcre8] | type[pcre.Pcre2]) -> pcre.Compiler:
    try:
        return kind()
    except OSError:
        pytest.skip(f"{kind.name} is not installed here")


@pytest.mark.parametrize("kind", [pcre.Pcre8, pcre.Pcre2], ids=lambda kind: kind.name)
def test_each_library_refuses_what_nginx_cannot_compile_naming_the_offset(
    kind: type[pcre.Pcre8] | type[pcre.Pcre2],
) -> None:
    library = _library(kind)
    assert "\\u" in (library.error("x\\u0041") or "") and "at offset" in (library.error("x\\u0041") or "")
    assert library.error("(") is not None
    assert library.error("^/(a+)+$") is None and library.error(".*") is None


def test_compiling_many_routes_frees_each_one() -> None:
    """The listener validates every registration: a leak per compile would grow it without bound."""
    library = pcre.compiler()
    route = "^/api/v[0-9]+/(users|items)/[^/]+/.*\\.json$"
    for _ in range(2_000):
        library.error(route)
    before = _resident_kb()
    for _ in range(50_000):
        library.error(route)
    assert _resident_kb() - before < 4_000  # a leak of the ~300-byte compiled pattern would be ~15 MB


def _resident_kb() -> int:
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(line.split()[1] for line in lines if line.startswith("VmRSS:")))


@pytest.mark.parametrize(
    ("needed", "expected"),
    [(b"libpcre2-8.so.0", pcre.Pcre2), (b"libpcre.so.3", pcre.Pcre8), (None, pcre.Pcre2)],
)
def test_the_library_is_the_one_the_lua_module_names(
    tmp_path: Path, needed: bytes | None, expected: type[pcre.Pcre8] | type[pcre.Pcre2]
) -> None:
    _library(expected)
    module = tmp_path / "ngx_http_lua_module.so"
    if needed is not None:
        module.write_bytes(b"\x7fELF...libc.so.6\x00" + needed + b"\x00...")
    assert isinstance(pcre.compiler(module), expected)
