"""proxylistener: the TCP 8282 registration daemon, one asyncio loop serving every connection.

Each connection gets one request and exactly one reply (registration/wire.py), within a deadline
and size limits; concurrent connections are capped. Identity (identity.py) and the rules
(authorize.py) decide; registrar.py writes through the route store in a small worker pool.
One log line per request (core/logs.py: JSON or text, never the token), Prometheus metrics on a
local port (port probes counted apart from requests), and SIGTERM stops accepting, then lets
requests in flight finish.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvloop

from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import config, logs, output, tokens, wire
from toolforgectl.core.config import ProxyListener
from toolforgectl.core.errors import BadRequestError, RefusedError, ToolforgectlError
from toolforgectl.daemons.proxylistener import authorize, identity, metrics
from toolforgectl.daemons.proxylistener.authorize import Policy
from toolforgectl.daemons.proxylistener.registrar import Outcome, Registrar, standby_reply

log = logging.getLogger("proxylistener")

READ_CHUNK = 4096
WORKERS = 8
STOP_GRACE = 10.0
LINGER_SECONDS = 2.0  # after replying, read (and drop) what the client still sends ...
LINGER_BYTES = 2 << 20  # ... so that closing does not reset the connection under our reply


# Private control flow: raised deep in the read loop and caught in `_receive`, which turns it into
# the "empty" outcome; it never leaves this module, so it has no place of its own in core/errors.py.
class _EmptyConnectionError(ToolforgectlError):
    """The client closed without sending a byte."""


class Listener:
    """Accepts connections and answers each with exactly one reply."""

    def __init__(self, settings: ProxyListener, registrar: Registrar) -> None:
        self.settings = settings
        self.registrar = registrar
        self.limits = wire.Limits(settings.max_line, settings.max_lines)
        self.token_mode = "token" in settings.identity  # fixed at start: not worked out per request
        self.ident_mode = "ident" in settings.identity
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="routestore")
        self.inflight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then finish the requests in flight."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        server = await asyncio.start_server(
            self._connection, self.settings.listen, self.settings.port, backlog=1024
        )
        where = {"address": self.settings.listen, "port": self.settings.port}
        logs.event(log, f"listening on {self.settings.listen}:{self.settings.port}", **where)
        await stopping.wait()
        server.close()
        logs.event(log, "stopping: finishing the requests in flight", in_flight=len(self.inflight))
        if self.inflight:
            await asyncio.wait(self.inflight, timeout=STOP_GRACE)
        self.pool.shutdown(wait=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.inflight.add(task)
        started = time.monotonic()
        peer, peer_port = writer.get_extra_info("peername")[:2]
        try:
            with metrics.CONNECTIONS.track_inprogress():
                request, outcome = await self._answer(reader, writer, peer, peer_port)
            _record(request, outcome, peer, time.monotonic() - started)
        finally:
            writer.close()
            self.inflight.discard(task)

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str, peer_port: int
    ) -> tuple[wire.Request | None, Outcome]:
        """Serve the one request of a connection and send its one reply."""
        try:
            request, outcome = await self._serve(reader, writer, peer, peer_port)
        except Exception:  # a bug: keep the traceback, but still answer exactly once
            log.exception("request from %s failed", peer)
            request, outcome = None, Outcome(None, "internal_error", wire.sentence("Internal error."))
        if outcome.reply:
            with contextlib.suppress(ConnectionError, TimeoutError):
                await _reply(reader, writer, outcome.reply)
        return request, outcome

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str, peer_port: int
    ) -> tuple[wire.Request | None, Outcome]:
        if len(self.inflight) > self.settings.max_connections:
            return None, Outcome(None, "busy", wire.sentence("The proxy is busy; try again shortly."))
        request = await self._receive(reader, peer)
        if isinstance(request, Outcome):
            return None, request
        try:
            ident_tool = await self._ident(request, peer, peer_port, writer)
        except RefusedError as exc:
            return request, Outcome(None, "unauthenticated", wire.sentence(str(exc)))
        loop = asyncio.get_running_loop()
        return request, await loop.run_in_executor(
            self.pool, self.registrar.handle, request, peer, ident_tool
        )

    async def _receive(self, reader: asyncio.StreamReader, peer: str) -> wire.Request | Outcome:
        """The request, or the Outcome that ends the connection before there is one."""
        waiting_for = ["command"]
        try:
            async with asyncio.timeout(self.settings.read_timeout):
                return await self._read(reader, self._token_line(peer), waiting_for)
        except TimeoutError:
            return Outcome(
                None, "timeout", wire.sentence(f"Timed out waiting for the {waiting_for[0]} line.")
            )
        except BadRequestError as exc:
            return Outcome(None, "fail" if exc.reply == wire.FAIL else "bad_request", exc.reply)
        except ConnectionError:
            return Outcome(None, "reset", b"")
        except _EmptyConnectionError:
            return Outcome(None, "empty", b"")

    def _token_line(self, peer: str) -> wire.TokenLine:
        """Whether this caller must, may or need not send a token line."""
        if not self.ident_mode:
            return "required"
        if not self.token_mode:
            return "absent"
        try:
            authorize.check_ident_source(self.registrar.policy, peer)
        except RefusedError:
            return "required"
        return "optional"

    async def _read(
        self, reader: asyncio.StreamReader, token_line: wire.TokenLine, waiting_for: list[str]
    ) -> wire.Request:
        buffer = b""
        while True:
            parsed = wire.parse(buffer, token_line, self.limits)
            if isinstance(parsed, wire.Request):
                return parsed
            waiting_for[0] = parsed.missing
            chunk = await reader.read(READ_CHUNK)
            if not chunk and not buffer:
                raise _EmptyConnectionError  # a port probe or health check, not a request
            if not chunk:
                raise BadRequestError(wire.sentence(f"Request ended before the {parsed.missing} line."))
            buffer += chunk

    async def _ident(
        self, request: wire.Request, peer: str, peer_port: int, writer: asyncio.StreamWriter
    ) -> str | None:
        if request.token is not None:
            return None
        if not self.ident_mode:
            raise RefusedError("This proxy needs your tool's token line.")
        authorize.check_ident_source(self.registrar.policy, peer)
        local_port = writer.get_extra_info("sockname")[1]
        query = identity.IdentQuery(peer, self.settings.ident_port, peer_port, local_port)
        return await identity.ident_tool(query, self.settings.project, self.settings.ident_timeout)


async def _reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: bytes) -> None:
    """Send the one reply, half-close, and drain briefly so the close cannot reset it away."""
    writer.write(reply)
    async with asyncio.timeout(LINGER_SECONDS):
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    drained = 0
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(LINGER_SECONDS):
            while drained < LINGER_BYTES and (chunk := await reader.read(65536)):
                drained += len(chunk)


def _record(request: wire.Request | None, outcome: Outcome, peer: str, seconds: float) -> None:
    """The one log line and the metrics of a finished request. The token is never logged.

    A connection closed without a byte is a port probe or health check, not a request: it is
    counted apart and not logged, so probes neither fill the log nor skew the request figures.
    """
    if outcome.label == "empty":
        metrics.PROBES.inc()
        return
    command = request.command if request else None
    metrics.observe(command or "none", outcome.label, seconds)
    entry = {
        "tool": outcome.tool,
        "command": command,
        "route": request.route if request else None,
        "destination": request.destination.url if request and request.destination else None,
        "peer": peer,
        "identity": ("token" if request.token else "ident") if request else None,
        "outcome": outcome.label,
        "reply": outcome.reply.decode("ascii", "replace"),
        "ms": round(seconds * 1000, 2),
    }
    logs.event(log, f"{command or 'unparsed request'} from {peer}: {outcome.label}", **entry)


def build(settings: ProxyListener, fleet_active: str | None) -> Listener:
    """A Listener wired to its route store, policy and token key."""
    key = tokens.load_key(Path(settings.token_key_file)) if "token" in settings.identity else None
    registrar = Registrar(
        store=RouteStore.from_url(settings.redis),
        policy=Policy.from_settings(settings),
        key=key,
        canonical_domain=settings.canonical_domain,
        standby_reply=lambda: standby_reply(settings.active_proxy_file, fleet_active),
    )
    return Listener(settings, registrar)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="proxylistener", description=__doc__)
    parser.add_argument(
        "--config", help="fleet config with a proxylistener section (default: $TOOLFORGECTL_CONFIG)"
    )
    parser.add_argument("--listen", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="TCP port (default 8282)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port on metrics_address, 0 = off")
    parser.add_argument("--redis", help="route store URL (default the local Redis)")
    logs.add_arguments(parser)
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> tuple[ProxyListener, str | None]:
    path = config.find(args.config)
    fleet = config.load(path) if path else None
    settings = fleet.proxylistener if fleet else ProxyListener()
    overrides = {
        name: value
        for name, value in (
            ("listen", args.listen), ("port", args.port),
            ("metrics_port", args.metrics_port), ("redis", args.redis),
        )
        if value is not None
    }  # fmt: skip
    return config.overridden(settings, "command line", **overrides), (fleet.active_proxy if fleet else None)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the daemon until SIGTERM."""
    args = _arguments(argv)
    logs.setup(args.log_format, args.log_level)
    try:
        settings, fleet_active = _settings(args)
        listener = build(settings, fleet_active)
        metrics.serve(settings.metrics_address, settings.metrics_port)
        uvloop.run(listener.run())  # libuv's loop: part of what took it past 2,000/s (docs/benchmarks.md)
    except (ToolforgectlError, OSError) as exc:
        output.fail("proxylistener", exc)


if __name__ == "__main__":
    main()
