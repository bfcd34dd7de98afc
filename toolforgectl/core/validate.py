"""Validation of everything that may enter the route store: tool names, route regexes, backends,
and the reason and task id an operator attaches to a write.

Each validator returns the canonical form of an acceptable value (for a backend, the parsed
`Backend`) or raises ValidationError with a sentence fit for an operator. Nothing here touches
Redis, so the rules can be reused by every daemon and tested exhaustively.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from toolforgectl.core.errors import ValidationError
from toolforgectl.core.models import Backend, IPAddress

TOOL_NAME_MAX = 63
ROUTE_MAX = 256
BACKEND_MAX = 128
REASON_MAX = 500
TASK_ID_MAX = 64

# DNS-label style: a tool name is also the left-most label in host mode. Not all digits: such a
# label is what the first number of an IP address looks like, and a request to an address must
# never select a tool (lua/urlproxy/schema.lua mirrors this, pinned by tests/fixtures/schema.json).
_TOOL_NAME = re.compile(r"(?![0-9]+$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ALL_DIGITS = re.compile(r"[0-9]+")
_PORT = re.compile(r"[0-9]{1,5}")


def shown(value: object, limit: int = 40) -> str:
    """Quote a hostile value safely for an error line: bounded length, no control characters."""
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def tool_name(value: str) -> str:
    """Return `value` if it is an acceptable tool name (a lowercase DNS label, not all digits)."""
    if not value:
        raise ValidationError("tool name is empty")
    if len(value) > TOOL_NAME_MAX:
        raise ValidationError(f"tool name is longer than {TOOL_NAME_MAX} characters")
    if _ALL_DIGITS.fullmatch(value):
        raise ValidationError(
            f"tool name {shown(value)} is all digits (it would look like part of an IP address)"
        )
    if not _TOOL_NAME.fullmatch(value):
        raise ValidationError(
            f"tool name {shown(value)} is not a lowercase DNS label "
            "(letters a-z, digits and inner hyphens only)"
        )
    return value


def route(value: str) -> str:
    """Return `value` if it is an acceptable route regex: printable, bounded, and compiling."""
    if not value:
        raise ValidationError("route is empty")
    if len(value) > ROUTE_MAX:
        raise ValidationError(f"route is longer than {ROUTE_MAX} characters")
    if not value.isprintable():
        raise ValidationError(f"route {shown(value)} contains control or non-printable characters")
    try:
        re.compile(value)
    except (re.error, OverflowError, RecursionError) as exc:
        # OverflowError: `a{4294967296}`; RecursionError: absurd nesting. Both are caller input.
        raise ValidationError(f"route {shown(value)} is not a valid regex: {exc}") from None
    return value


def backend(value: str) -> Backend:
    """Parse a backend URL `http[s]://<ip>:<port>` into a Backend (its `.url` is the canonical form).

    The host must be an IP literal: nginx's balancer needs one, and resolving names on the
    request path is what the original stopped doing in 2016. No credentials, no path, no query:
    the URI reaches the backend unchanged, so anything after the port would be a path trick.
    """
    if len(value) > BACKEND_MAX:
        raise ValidationError(f"backend URL is longer than {BACKEND_MAX} characters")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise ValidationError(f"backend URL {shown(value)} contains whitespace or control characters")
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unbalanced "[" in the host
        raise ValidationError(f"backend URL {shown(value)} is not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError(f"backend URL {shown(value)} must use http or https")
    if "@" in parts.netloc:
        raise ValidationError(f"backend URL {shown(value)} must not carry credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValidationError(f"backend URL {shown(value)} must not have a path, query or fragment")
    host, port = _host_and_port(parts.netloc, value)
    return Backend("https" if parts.scheme == "https" else "http", host, port)


def _host_and_port(netloc: str, value: str) -> tuple[IPAddress, int]:
    host_text, sep, port_text = netloc.rpartition(":")
    if not sep or not _PORT.fullmatch(port_text):
        raise ValidationError(f"backend URL {shown(value)} needs an explicit numeric port")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValidationError(f"backend URL {shown(value)} has port {port}, outside 1-65535")
    if host_text.startswith("[") and host_text.endswith("]"):
        host_text = host_text[1:-1]
    try:
        host = ipaddress.ip_address(host_text)
    except ValueError:
        raise ValidationError(
            f"backend URL {shown(value)} must name its host by IP address, not by name"
        ) from None
    if isinstance(host, ipaddress.IPv6Address) and host.scope_id:
        raise ValidationError(f"backend URL {shown(value)} must not use an IPv6 zone")
    if host.is_unspecified or host.is_multicast:
        raise ValidationError(f"backend URL {shown(value)} names no single host")
    return host, port


def reason(value: str) -> str:
    """Return `value` if it can stand in the audit record as a write's reason: one printable line."""
    if len(value) > REASON_MAX:
        raise ValidationError(f"reason is longer than {REASON_MAX} characters")
    if not value.isprintable():
        raise ValidationError(f"reason {shown(value)} contains control or non-printable characters")
    return value


def task_id(value: str) -> str:
    """Return `value` if it is an acceptable task id (e.g. `T12345`): printable, no blanks, bounded."""
    if len(value) > TASK_ID_MAX:
        raise ValidationError(f"task id is longer than {TASK_ID_MAX} characters")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise ValidationError(f"task id {shown(value)} contains blanks or control characters")
    return value
