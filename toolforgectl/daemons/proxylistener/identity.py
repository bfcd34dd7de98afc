"""Who is calling proxylistener: an RFC 1413 ident query back to the caller, or a token.

Ident (compatible): ask the caller's identd which user owns the connection; the answer
`<port>,<port> : USERID : UNIX : tools.mytool` names the tool. Only as trustworthy as root on the
calling host, so the listener accepts it only from configured networks (authorize.py), with a short
timeout. Token (the secure default): tokens.py; verified where the route store is at hand.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from toolforgectl.core import validate
from toolforgectl.core.errors import RefusedError, ValidationError

IDENT_REPLY_MAX = 1000
IDENT_FAILED = "Identd authentication failed. Please contact an administrator"
NOT_A_TOOL = "This service available only to tool accounts"


@dataclass(frozen=True)
class IdentQuery:
    """Where to ask: the caller's host and identd port, and the connection's two ports."""

    host: str
    ident_port: int
    caller_port: int
    listener_port: int


async def ident_tool(query: IdentQuery, project: str, timeout: float) -> str:
    """The tool the caller's identd names (user `<project>.<tool>`), or RefusedError."""
    try:
        async with asyncio.timeout(timeout):
            answer = await _ask(query)
    except (TimeoutError, OSError):
        raise RefusedError(IDENT_FAILED) from None
    user = ident_user(answer, query)
    if not user.startswith(project + "."):
        raise RefusedError(NOT_A_TOOL)
    try:
        return validate.tool_name(user[len(project) + 1 :])
    except ValidationError:
        raise RefusedError(NOT_A_TOOL) from None


async def _ask(query: IdentQuery) -> bytes:
    reader, writer = await asyncio.open_connection(query.host, query.ident_port)
    try:
        writer.write(f"{query.caller_port},{query.listener_port}\r\n".encode())
        await writer.drain()
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except asyncio.LimitOverrunError:
        raise RefusedError(IDENT_FAILED) from None
    finally:
        writer.close()


def ident_user(answer: bytes, query: IdentQuery) -> str:
    """The user-id of an RFC 1413 reply, which must be about the connection we asked about."""
    text = answer[:IDENT_REPLY_MAX].decode("utf-8", "replace").strip()
    parts = [part.strip() for part in text.split(":", 3)]
    if len(parts) != 4 or parts[1].upper() != "USERID":
        raise RefusedError(IDENT_FAILED)
    ports = [port.strip() for port in parts[0].split(",")]
    if ports != [str(query.caller_port), str(query.listener_port)]:
        raise RefusedError(IDENT_FAILED)
    return parts[3]
