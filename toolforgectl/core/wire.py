"""The proxylistener (TCP 8282) wire protocol: framing and parsing requests, and the replies.

One request per connection, newline-terminated lines (a trailing CR and surrounding blanks are
stripped, as the original's `readline().strip()` did):

    register | registerCanonical          unregister
    <route regex>                         <route regex>
    http://<ip>:<port>                    [<token>]        (token mode)
    [<token>]                             (token mode)

The token line comes last, so a server that does not want it (the original, or ours in ident mode)
never reads it, and the original three-line clients still work against ident mode. Where the token
line is optional (`[token, ident]` mode), a request without one is complete only once nothing more
can come: the client half-closed, or the whole-request deadline passed (or it sent an empty line
where the token would be). A token line that arrives in a later TCP segment is therefore read, not
ignored. The reply is the raw bytes `ok`, `fail` (unknown command) or one short English sentence,
no newline; then the server closes. `parse` is a pure function of the bytes received so far and of
whether the request has ended, so it is fuzzed directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from toolforgectl.core import validate
from toolforgectl.core.errors import BadRequestError, ValidationError
from toolforgectl.core.models import Backend

REGISTER = "register"
REGISTER_CANONICAL = "registerCanonical"
UNREGISTER = "unregister"
COMMANDS = (REGISTER, REGISTER_CANONICAL, UNREGISTER)
OK = b"ok"
FAIL = b"fail"
SENTENCE_MAX = 200
# The ports a destination may use: clients pick one in this range, the server refuses any other
# (a privileged port on a grid node belongs to root, not to a tool).
PORT_MIN = 1024
PORT_MAX = 65535

TokenLine = Literal["required", "optional", "absent"]


@dataclass(frozen=True)
class Limits:
    """How much a request may carry before it is refused."""

    max_line: int = 1024
    max_lines: int = 4


@dataclass(frozen=True)
class Request:
    """A complete, well-formed request. Nothing in it is trusted yet: identity comes later.

    The destination is parsed here, once, and passed on as a Backend to the authorization rules
    and the route store.
    """

    command: str
    route: str
    destination: Backend | None
    token: str | None

    @property
    def registers(self) -> bool:
        """Whether this request asks to set a route (rather than remove one)."""
        return self.command != UNREGISTER


@dataclass(frozen=True)
class Incomplete:
    """More bytes are needed; `missing` names the next line, for the timeout reply."""

    missing: str


def sentence(text: str) -> bytes:
    """An error reply: one ASCII line without a newline, bounded in length."""
    clean = "".join(c if c.isprintable() and c.isascii() else "?" for c in text)
    return clean[:SENTENCE_MAX].encode("ascii")


def parse(buffer: bytes, token: TokenLine, limits: Limits, *, ended: bool = False) -> Request | Incomplete:
    """The request in `buffer` (all bytes received so far), or what is still missing.

    `ended`: no more bytes will come (the client half-closed, or the read deadline passed); only an
    optional token line depends on it. Raises BadRequestError when no further bytes could make the
    request acceptable.
    """
    *complete, tail = buffer.split(b"\n")
    if len(tail) > limits.max_line or any(len(line) > limits.max_line for line in complete):
        raise BadRequestError(sentence(f"Request line is longer than {limits.max_line} bytes."))
    if len(complete) > limits.max_lines:
        raise BadRequestError(sentence(f"Request has more than {limits.max_lines} lines."))
    lines = [_text(line) for line in complete]
    if not lines:
        return Incomplete("command")
    if lines[0] not in COMMANDS:
        raise BadRequestError(FAIL)
    names = ["command", "route"] + (["destination"] if lines[0] != UNREGISTER else [])
    if token == "required" or (token == "optional" and _token_line_coming(lines[len(names) :], tail, ended)):
        names.append("token")
    if len(lines) < len(names):
        return Incomplete(names[len(lines)])
    return _request(dict(zip(names, lines, strict=False)))


def _token_line_coming(after: list[str], tail: bytes, ended: bool) -> bool:
    """Whether a request whose token line is optional has, or may still get, one.

    `after` holds the complete lines after the request's own; `tail` the start of a line still
    arriving. An empty line in the token's place says "no token", as does the end of the request
    with nothing after the last line; until then the token line may still be on its way.
    """
    if after:
        return bool(after[0])
    return bool(tail) or not ended


def _text(line: bytes) -> str:
    try:
        return line.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequestError(sentence("Request is not UTF-8 text.")) from None


def _request(fields: dict[str, str]) -> Request:
    try:
        route = validate.route(fields["route"])
        destination = validate.backend(fields["destination"]) if "destination" in fields else None
    except ValidationError as exc:
        raise BadRequestError(sentence(f"Refused: {exc}.")) from None
    token = fields.get("token")
    if token is not None and not token:
        raise BadRequestError(sentence("Token line is empty."))
    return Request(fields["command"], route, destination, token)


def encode(command: str, route: str, destination: str | None = None, token: str | None = None) -> bytes:
    """A request as a client sends it (the original three lines, plus the token line if any)."""
    lines = [command, route] + ([destination] if destination is not None else [])
    lines += [token] if token is not None else []
    return "".join(f"{line}\n" for line in lines).encode()
