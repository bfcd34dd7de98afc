"""The route store's key names: shared with the original system, or under `toolforgectl:`.

What each key holds is in the package's docstring (toolforgectl/adapters/routestore/__init__.py);
lua/urlproxy/schema.lua mirrors these names once, and tests/fixtures/schema.json pins both.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from toolforgectl.core.models import BlockKind

PREFIX = "prefix:"
REDIRECT = "redirect:"
K8S_SERVICES = "k8s_services"
ADMIN_TOOL = "admin"
VERSION_KEY = "toolforgectl:routes:version"
AUDIT_PREFIX = "toolforgectl:audit:"
AUDIT_MAXLEN = 1000
TOKEN_PREFIX = "toolforgectl:token:"
LOCK_PREFIX = "toolforgectl:lock:"
BLOCK_PREFIX = "toolforgectl:block:"
BLOCK_AUDIT_KEY = BLOCK_PREFIX + "audit"
# Most entries per block list: the data plane matches every request against the regex lists, and
# reads the lists whole after each change. lua/urlproxy/schema.lua reads no more than these.
BLOCK_LIMITS: dict[str, int] = {"ip": 1000, "user-agent": 100, "referer": 100}
DEFAULT_TIMEOUT = 2.0


def prefix_key(tool: str) -> str:
    """The Redis key holding `tool`'s routes."""
    return PREFIX + tool


def redirect_key(tool: str) -> str:
    """The Redis key holding `tool`'s canonical-host redirects."""
    return REDIRECT + tool


def block_key(kind: BlockKind) -> str:
    """The Redis key holding the block list of `kind`."""
    return BLOCK_PREFIX + kind


def audit_key(tool: str) -> str:
    """The Redis key of `tool`'s audit stream."""
    return AUDIT_PREFIX + tool


def redacted(url: str) -> str:
    """`url` with any password replaced, so it can appear in logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + netloc))
