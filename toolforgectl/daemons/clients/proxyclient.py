"""The client side of the 8282 protocol, shared by webservice-runner and portreleaser.

Finds the active proxy (`--proxy`, else /etc/active-proxy as core/activeproxy.py reads it; an
empty file is the kill switch that skips registration), sends one request per connection, accepts
exactly `ok`, and retries a bounded number of times with backoff when the proxy is unreachable or
says to try again, for long enough to outlast a proxylistener restart.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolforgectl.core import activeproxy, logs, wire
from toolforgectl.core.config import ProxyListener
from toolforgectl.core.errors import ActiveProxyError, RegistrationError

# The client's defaults are the server's: a grid node has no fleet config to read them from.
ACTIVE_PROXY_FILE = activeproxy.DEFAULT_FILE
PROXY_PORT = ProxyListener.port
TOKEN_FILE_ENV = "TOOLFORGE_PROXY_TOKEN_FILE"
DEFAULT_TOKEN_FILE = "~/.proxylistener-token"
REPLY_MAX = 1024
TRANSIENT = ("try again", "busy")
# The retry budget: waits of 0.5, 1, 2, then 4 s, 19.5 s in all with the default 7 retries. A
# proxylistener restart refuses connections until the old process has finished its requests in
# flight (up to its 10 s stop grace) and the new one listens; the budget outlasts that, so a job
# that starts during a restart still registers. (A socket-activated listener queues connections
# across a restart instead: the per-attempt timeout covers that wait.)
RETRIES = 7
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 4.0

log = logging.getLogger("proxyclient")


@dataclass(frozen=True)
class Target:
    """Where and how to talk to the proxylistener."""

    host: str
    port: int
    timeout: float
    retries: int
    token: str | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every client takes: which proxy, which route, which token, how hard to try."""
    parser.add_argument("--proxy", help=f"proxy host (default: the content of {ACTIVE_PROXY_FILE})")
    parser.add_argument(
        "--active-proxy-file", default=ACTIVE_PROXY_FILE, help="where the active proxy is named"
    )
    parser.add_argument(
        "--proxy-port", type=int, default=PROXY_PORT, help=f"proxylistener port (default {PROXY_PORT})"
    )
    parser.add_argument("--route", default=".*", help="route regex (default .*)")
    parser.add_argument(
        "--token-file",
        default=os.environ.get(TOKEN_FILE_ENV, DEFAULT_TOKEN_FILE),
        help=f"the tool's token (default ${TOKEN_FILE_ENV} or {DEFAULT_TOKEN_FILE}); absent = ident",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=RETRIES,
        help=f"extra attempts when the proxy is unreachable or busy (default {RETRIES}, "
        f"{sum(backoff(RETRIES)):g} s of waiting in all)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per attempt")
    logs.add_arguments(parser)


def target(args: argparse.Namespace) -> Target | None:
    """The proxylistener to use: `--proxy`, else the active proxy by the policy of
    core/activeproxy.py; None when the file is empty (the kill switch)."""
    host = args.proxy
    if host is None:
        try:
            host = activeproxy.read(args.active_proxy_file).host  # a grid node has no fleet config
        except ActiveProxyError as exc:
            raise RegistrationError(f"{exc}; pass --proxy") from None
        if host is None:
            return None
    return Target(host, args.proxy_port, args.timeout, max(0, args.retries), _token(Path(args.token_file)))


def _token(path: Path) -> str | None:
    path = path.expanduser()
    try:
        token = path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RegistrationError(f"cannot read the token file {path}: {exc.strerror}") from None
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by others, who can act as this tool; chmod 600 it", path)
    return token


def call(where: Target, payload: Callable[[str], bytes]) -> str:
    """Send `payload(own address)` and require `ok`; retries transient failures with backoff.

    Returns the own address the proxy saw, which is what a registration must point at.
    """
    for delay in [*backoff(where.retries), None]:
        try:
            return _once(where, payload)
        except (OSError, _TransientError) as exc:
            if delay is None:
                raise RegistrationError(f"proxy {where.host}:{where.port} failed: {_reason(exc)}") from None
            log.warning("proxy %s:%d: %s; retrying in %gs", where.host, where.port, _reason(exc), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def backoff(retries: int) -> list[float]:
    """The waits before each of `retries` retries: doubling from BACKOFF_FIRST, at most BACKOFF_MAX."""
    return [min(BACKOFF_FIRST * 2**n, BACKOFF_MAX) for n in range(retries)]


# Private control flow: raised by one attempt and caught by `call`, which retries or turns it into
# a plain RegistrationError; it never leaves this module, so core/errors.py does not list it.
class _TransientError(RegistrationError):
    """The proxy answered something that may succeed if asked again."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _TransientError):
        return str(exc)
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _once(where: Target, payload: Callable[[str], bytes]) -> str:
    with socket.create_connection((where.host, where.port), timeout=where.timeout) as sock:
        own = str(sock.getsockname()[0])
        sock.sendall(payload(own))
        # Half-close: this is the whole request. A listener that would also read a token line
        # (`[token, ident]` mode) otherwise waits out its read deadline before judging three lines.
        sock.shutdown(socket.SHUT_WR)
        reply = _read_reply(sock)
    if reply == wire.OK:
        return own
    text = reply.decode("utf-8", "replace") or "(empty reply)"
    if not reply or any(mark in text for mark in TRANSIENT):
        raise _TransientError(text)
    raise RegistrationError(f"proxy {where.host}:{where.port} refused: {text}")


def _read_reply(sock: socket.socket) -> bytes:
    """Everything the server sends before it closes (it replies once, then closes)."""
    reply = b""
    while len(reply) <= REPLY_MAX and (chunk := sock.recv(REPLY_MAX)):
        reply += chunk
    return reply
