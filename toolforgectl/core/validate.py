"""Validation of everything that may enter the route store: tool names, route regexes, backends,
and the reason and task id an operator attaches to a write.

Route regexes are nginx's (PCRE, see pcre.py), not Python's: they are compiled with the library
nginx matches them with, and a `{...}` that PCRE versions read differently is refused.

Each validator returns the canonical form of an acceptable value (for a backend, the parsed
`Backend`) or raises ValidationError with a sentence fit for an operator. Nothing here touches
Redis, so the rules can be reused by every daemon and tested exhaustively.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from toolforgectl.core import pcre
from toolforgectl.core.errors import ValidationError
from toolforgectl.core.models import BLOCK_KINDS, Backend, BlockKind, Host, IPAddress

TOOL_NAME_MAX = 63
ROUTE_MAX = 256
BACKEND_MAX = 128
REASON_MAX = 500
TASK_ID_MAX = 64
BLOCK_NETWORK_MAX = 64
# The broadest network a block may name: a typo must not lock out a continent (or everyone).
BLOCK_PREFIX_MIN = {4: 8, 6: 16}
# Routes one tool may have (`dataplane.max_routes_per_tool`): every request of a tool may try each
# of its regexes, and the clients only ever register `.*`.
MAX_ROUTES_PER_TOOL = 16
HOST_NAME_MAX = 253  # a DNS name: a backend's host, a canonical domain

# One lowercase DNS label: each label of a domain or host name (digits alone are a valid label there).
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A tool name is also the left-most label in host mode. Not all digits: such a label is what the
# first number of an IP address looks like, and a request to an address must never select a tool
# (lua/urlproxy/schema.lua mirrors this, pinned by tests/fixtures/schema.json).
_TOOL_NAME = re.compile(r"(?![0-9]+$)" + _LABEL.pattern)
_ALL_DIGITS = re.compile(r"[0-9]+")
_PORT = re.compile(r"[0-9]{1,5}")
# What a route's `{...}` may hold when its meaning changed between PCRE versions: `{,3}` is the text
# "{,3}" up to PCRE2 10.42 (and in PCRE 8) but `{0,3}` from 10.43 on (and in Python); spaces inside
# the braces likewise. A quantifier every version reads alike is `{n}`, `{n,}` or `{n,m}`.
_BRACES = re.compile(r"\{([0-9 \t,]*)\}")
_QUANTIFIER = re.compile(r"[0-9]+(?:,[0-9]*)?")
# 0.0.0.0/8 is "this network": connecting to any of it reaches this host or fails, never a tool.
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


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
    error = pcre.compile_error(value)
    if error is not None:
        raise ValidationError(f"route {shown(value)} is not a regex nginx can use (PCRE: {error})")
    braces = _ambiguous_braces(value)
    if braces is not None:
        raise ValidationError(
            f"route {shown(value)} has {braces}, which PCRE versions read differently (the text"
            f" {braces} up to PCRE2 10.42, a repeat after): write {{0,n}} to repeat, \\{braces} for"
            " the text"
        )
    return value


def _ambiguous_braces(pattern: str) -> str | None:
    """The first unescaped `{...}` outside a character class whose meaning depends on the PCRE
    version, or None. PCRE has compiled the pattern already, so classes and escapes are well-formed."""
    position, in_class = 0, False
    while position < len(pattern):
        char = pattern[position]
        if pattern.startswith("\\Q", position):  # \Q...\E quotes: nothing inside is syntax
            end = pattern.find("\\E", position + 2)
            position = len(pattern) if end == -1 else end + 2
            continue
        if char == "\\":
            position += 2
            continue
        if in_class:
            end = pattern.find(":]", position) if pattern.startswith("[:", position) else -1
            if end != -1:  # [:alpha:] inside a class
                position = end + 2
                continue
            in_class = char != "]"
        elif char == "[":
            in_class = True
            position += 1
            position += pattern.startswith("^", position)
            position += pattern.startswith("]", position)  # a leading "]" is literal
            continue
        elif char == "{":
            found = _BRACES.match(pattern, position)
            if found and found.group(1) and not _QUANTIFIER.fullmatch(found.group(1)):
                return found.group(0)
        position += 1
    return None


def backend(value: str) -> Backend:
    """Parse a backend URL `http[s]://<host>:<port>` into a Backend (its `.url` is the canonical form).

    The host is an IP literal naming one host (not an unspecified, multicast, link-local or
    broadcast address: no tool can be there), or a DNS name with a domain, which the data plane
    resolves off the request path (docs/dataplane.md). No credentials, no path, no query: the URI
    reaches the backend unchanged, so anything after the port would be a path trick. Whether this
    fleet may route there (loopback, the proxies themselves) is `core/destinations.py`'s question.
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


def _host_and_port(netloc: str, value: str) -> tuple[Host, int]:
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
        return host_name(host_text, value), port
    if isinstance(host, ipaddress.IPv6Address) and host.scope_id:
        raise ValidationError(f"backend URL {shown(value)} must not use an IPv6 zone")
    why = no_single_host(host)
    if why:
        raise ValidationError(f"backend URL {shown(value)} names {why}")
    return host, port


def domain_name(value: str) -> str:
    """Return `value` if it is a host name a redirect may point at: dotted lowercase DNS labels.

    What `registerCanonical` records in `redirect:<tool>` (`<tool>.toolforge.org`) and what the data
    plane's `canonical_domain` names; never a URL, so nothing can ride along into a Location header.
    """
    if not value:
        raise ValidationError("domain name is empty")
    if len(value) > HOST_NAME_MAX:
        raise ValidationError(f"domain name is longer than {HOST_NAME_MAX} characters")
    if not all(_LABEL.fullmatch(label) for label in value.split(".")):
        raise ValidationError(
            f"domain name {shown(value)} is not dot-separated lowercase DNS labels "
            "(letters a-z, digits and inner hyphens)"
        )
    return value


def host_name(text: str, value: str) -> str:
    """The lowercase form of `text` if it is a DNS name a backend may use; `value` names it in errors.

    ASCII letters, digits and inner hyphens in labels of 1-63 characters, 253 in all, at least two
    labels (no search domain is applied, so a bare `grid-1205` would mean nothing definite), no
    trailing dot, and a last label that is not all digits (`127.1` is an address, not a name).
    """
    labels = text.lower().split(".") if text.isascii() else []
    if (
        len(text) > HOST_NAME_MAX
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValidationError(
            f"backend URL {shown(value)} must name its host by IP address or by a DNS name with a"
            " domain (labels of letters, digits and inner hyphens)"
        )
    return ".".join(labels)


def no_single_host(address: IPAddress) -> str | None:
    """Why no tool can be at `address` (unspecified, multicast, link-local, broadcast), or None.

    An IPv4-mapped IPv6 address is judged as the IPv4 address it reaches. Link-local covers
    169.254.169.254, the cloud metadata service: a route there would publish its answers.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified or address in _THIS_NETWORK:
        return "an unspecified address (0.0.0.0/8, ::)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address (169.254.0.0/16, fe80::/10: e.g. the cloud metadata service)"
    if address == _BROADCAST:
        return "the broadcast address"
    return None


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


def block_entry(kind: str, value: str) -> tuple[BlockKind, str]:
    """The kind and the canonical form of a block list entry, as the route store keeps it.

    `ip`: an address or a CIDR network (`203.0.113.9` is `203.0.113.9/32`); `user-agent` and
    `referer`: a regex matched (unanchored, case-sensitive) against that header, checked as a route is.
    """
    if kind == "ip":
        return "ip", _block_network(value)
    for known in BLOCK_KINDS:
        if kind == known:
            return known, _block_pattern(known, value)
    raise ValidationError(f"block kind {shown(kind)} is not one of {', '.join(BLOCK_KINDS)}")


def _block_network(value: str) -> str:
    if len(value) > BLOCK_NETWORK_MAX:
        raise ValidationError(f"blocked network is longer than {BLOCK_NETWORK_MAX} characters")
    if "%" in value:
        raise ValidationError(f"{shown(value)} has an IPv6 zone, which client addresses never carry")
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            broader = ipaddress.ip_network(value, strict=False)
            raise ValidationError(f"{shown(value)} has host bits set; did you mean {broader}?") from None
        raise ValidationError(f"{shown(value)} is not an IP address or CIDR network") from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        raise ValidationError(f"{shown(value)} is an IPv4-mapped address: block the IPv4 address itself")
    broadest = BLOCK_PREFIX_MIN[network.version]
    if network.prefixlen < broadest:
        raise ValidationError(
            f"{network} is broader than /{broadest}: it would block far more than one abuser"
        )
    return str(network)


def _block_pattern(kind: BlockKind, value: str) -> str:
    """A header regex, held to the rules of a route regex (one rule for every pattern nginx runs)."""
    try:
        return route(value)
    except ValidationError as exc:
        message = str(exc)
        raise ValidationError(f"{kind} pattern{message.removeprefix('route')}") from None
