"""Registration tokens: a tool's secret for proxylistener, an HMAC of its name under a server key.

A token reads `tf1.<tool>.<generation>.<mac>`, where `mac` is the URL-safe base64 of
HMAC-SHA256(server key, "tf1.<tool>.<generation>"). The tool name is in clear so the listener can
derive who is calling; the MAC makes that claim unforgeable without the key. The generation is a
per-tool counter kept in the route store: rotating a tool's token bumps it, which invalidates the
old token without touching any other tool's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import shutil
from pathlib import Path

from toolforgectl.core import validate
from toolforgectl.core.errors import ConfigError, ValidationError

VERSION = "tf1"
KEY_MIN_BYTES = 32
TOKEN_MAX = 200
# Anything shaped like a token, wherever it appears: core/logs.py cuts the MAC out of every line.
SHAPE = re.compile(rf"(?P<prefix>{VERSION}\.[a-z0-9-]{{1,63}}\.[0-9]{{1,9}}\.)[A-Za-z0-9_-]+")
# A generation is spelled one way only, as `mint` writes it: ASCII digits, no leading zero. Python's
# str.isdigit() and int() also take "²" (which int() then rejects) and "٠" or "０" (read as 0), which
# would give one token several spellings; `[0-9]` in a str pattern is the ASCII range only.
_GENERATION = re.compile(r"0|[1-9][0-9]{0,8}")


def mint(key: bytes, tool: str, generation: int) -> str:
    """The token of `tool` at `generation` under `key`."""
    validate.tool_name(tool)
    return f"{VERSION}.{tool}.{generation}.{_mac(key, tool, generation)}"


def claimed(token: str) -> tuple[str, int, str]:
    """Split a token into (tool, generation, mac) without checking the MAC yet."""
    if len(token) > TOKEN_MAX:
        raise ValidationError("token is too long")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != VERSION or not _GENERATION.fullmatch(parts[2]):
        raise ValidationError("token is malformed")
    return validate.tool_name(parts[1]), int(parts[2]), parts[3]


def prove(key: bytes, token: str) -> tuple[str, int]:
    """The (tool, generation) `token` proves if its MAC is right; whether that generation is
    still current is the caller's to check (proxylistener does it atomically with its write)."""
    tool, generation, mac = claimed(token)
    if not hmac.compare_digest(mac.encode(), _mac(key, tool, generation).encode()):
        raise ValidationError("token is not valid")
    return tool, generation


def _mac(key: bytes, tool: str, generation: int) -> str:
    digest = hmac.new(key, f"{VERSION}.{tool}.{generation}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def load_key(path: Path) -> bytes:
    """The server key stored at `path` (raw bytes, at least 32)."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no token key (create one with `toolforgectl tools keygen {path}`)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the token key: {exc.strerror}") from None
    if len(key) < KEY_MIN_BYTES:
        raise ConfigError(f"{path}: token key is shorter than {KEY_MIN_BYTES} bytes")
    if path.stat().st_mode & 0o077:
        # Whoever reads the key can mint any tool's token: refuse, as sshd refuses an open key.
        raise ConfigError(f"{path}: token key is readable by others; chmod 600 {path}")
    return key


def write_secret(path: Path, content: bytes, owner: str | None = None) -> None:
    """Write `content` to `path` readable by its owner only (0600), atomically by rename.

    With `owner`, the file is given to that user first (a tool's token belongs to the tool).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        if owner is not None:
            shutil.chown(tmp, user=owner)  # mode 0600: the group does not matter
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
