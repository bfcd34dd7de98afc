"""Compiling a route regex as nginx's `ngx.re` will: with the PCRE library its Lua module links.

Python's `re` is not PCRE. It accepts `\\u0041` and `a{,3}`; nginx's PCRE refuses the first (so
the route never matches) and reads the second as the literal text `{,3}`. The authority is the
library nginx uses, so routes are compiled with it, with the options `ngx.re.find(s, p, "jo")`
passes (none: `j` only adds JIT, `o` only caches).

Which library that is depends on the Lua module: Debian 12's libnginx-mod-http-lua (0.10.23) links
PCRE 8 (libpcre.so.3) although nginx itself links PCRE2; 0.10.24 and later link PCRE2
(libpcre2-8.so.0). The module file names the one it needs; without nginx installed (an operator's
laptop), PCRE2 is used, else PCRE 8. Both are reached through ctypes: pure computation, no I/O
after the library is loaded, so this stays in core where `validate.route` needs it.
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path
from typing import Protocol

from toolforgectl.core.errors import ToolforgectlError

LUA_MODULE = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")
PCRE8 = "libpcre.so.3"
PCRE2 = "libpcre2-8.so.0"


class Compiler(Protocol):
    """One PCRE library's compile step."""

    name: str

    def error(self, pattern: str) -> str | None:
        """Why the library refuses `pattern` (with the offset), or None when it compiles."""


class Pcre8:
    """PCRE 8.x: `pcre_compile`, freed through the library's `pcre_free` hook."""

    name = PCRE8

    def __init__(self) -> None:
        lib = ctypes.CDLL(PCRE8)
        self._compile = lib.pcre_compile
        self._compile.restype = ctypes.c_void_p
        self._compile.argtypes = [
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_void_p,
        ]
        # `pcre_free` is a variable holding the free function, not a function.
        hook = ctypes.c_void_p.in_dll(lib, "pcre_free").value
        if not hook:
            raise OSError(f"{PCRE8} has no pcre_free")
        self._free = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(hook)

    def error(self, pattern: str) -> str | None:
        message, offset = ctypes.c_char_p(), ctypes.c_int()
        code = self._compile(pattern.encode(), 0, ctypes.byref(message), ctypes.byref(offset), None)
        if code:
            self._free(code)
            return None
        return f"{(message.value or b'').decode(errors='replace')} at offset {offset.value}"


class Pcre2:
    """PCRE2 (8-bit code units): `pcre2_compile_8`, messages from `pcre2_get_error_message_8`."""

    name = PCRE2

    def __init__(self) -> None:
        lib = ctypes.CDLL(PCRE2)
        self._compile = lib.pcre2_compile_8
        self._compile.restype = ctypes.c_void_p
        self._compile.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint32,
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_void_p,
        ]
        self._free = lib.pcre2_code_free_8
        self._free.argtypes = [ctypes.c_void_p]
        self._message = lib.pcre2_get_error_message_8
        self._message.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]

    def error(self, pattern: str) -> str | None:
        raw = pattern.encode()
        code, offset = ctypes.c_int(), ctypes.c_size_t()
        compiled = self._compile(raw, len(raw), 0, ctypes.byref(code), ctypes.byref(offset), None)
        if compiled:
            self._free(compiled)
            return None
        text = ctypes.create_string_buffer(256)
        self._message(code.value, text, len(text))
        return f"{text.value.decode(errors='replace')} at offset {offset.value}"


def _linked(module: Path) -> type[Pcre8] | type[Pcre2] | None:
    """The library the Lua module names in its dynamic section, or None without the module."""
    try:
        data = module.read_bytes()
    except OSError:
        return None
    if PCRE2.encode() in data:
        return Pcre2
    if PCRE8.encode() in data:
        return Pcre8
    return None


@cache
def compiler(module: Path = LUA_MODULE) -> Compiler:
    """The compiler ngx.re uses on this machine (loaded once per process)."""
    preferred = _linked(module)
    kinds: list[type[Pcre8] | type[Pcre2]] = [preferred] if preferred else [Pcre2, Pcre8]
    for kind in kinds:
        try:
            found: Compiler = kind()
        except (OSError, AttributeError):  # not installed, or not the library it claims to be
            continue
        return found
    raise ToolforgectlError(
        f"cannot check route regexes: no PCRE library found ({PCRE2} or {PCRE8}); install libpcre2-8-0"
    )


def compile_error(pattern: str) -> str | None:
    """Why nginx could not compile the route regex `pattern`, or None when it can."""
    return compiler().error(pattern)
