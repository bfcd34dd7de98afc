"""proxylistener: the TCP 8282 registration daemon, one asyncio loop serving every connection.

Each connection gets one request and exactly one reply (registration/wire.py), within a deadline
and size limits; concurrent connections are capped per source and overall (admission.py, which
also keeps the "busy" log lines down to one per source per interval). Identity (identity.py) and
the rules (authorize.py) decide; registrar.py writes through the route store in a small worker pool.
One log line per request (core/logs.py: JSON or text, never the token), Prometheus metrics on a
local port (port probes counted apart from requests), and SIGTERM stops accepting, then lets
requests in flight finish. Under systemd the listening socket can be handed over (activation.py),
so that connections made during a restart wait for the next process instead of being refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvloop

from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import config, logs, output, tokens, wire
from toolforgectl.core.config import ProxyListener
from toolforgectl.core.destinations import Destinations
from toolforgectl.core.errors import BadRequestError, RefusedError, ToolforgectlError
from toolforgectl.core.validate import MAX_ROUTES_PER_TOOL
from toolforgectl.daemons.proxylistener import activation, admission, authorize, identity, metrics
from toolforgectl.daemons.proxylistener.active import ActiveRoute
from toolforgectl.daemons.proxylistener.authorize import Policy
from toolforgectl.daemons.proxylistener.registrar import Outcome, Registrar

log = logging.getLogger("proxylistener")

READ_CHUNK = 4096
BACKLOG = 1024  # connections the kernel queues for us (and, socket-activated, during a restart)
WORKERS = 8
STOP_GRACE = 10.0
LINGER_SECONDS = 2.0  # after replying, read (and drop) what the client still sends ...
LINGER_BYTES = 2 << 20  # ... so that closing does not reset the connection under our reply
REFUSAL_LOG_INTERVAL = 10.0  # at most one "busy" log line per source this often (a flood is cheap)
BUSY = wire.sentence("The proxy is busy; try again shortly.")
BUSY_LABELS = ("busy", "busy_source")


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
        self.slots = admission.Slots(settings.max_connections, settings.max_connections_per_source)
        self.refusal_log = admission.RefusalLog(REFUSAL_LOG_INTERVAL)

    async def run(self, handed: socket.socket | None = None) -> None:
        """Serve until SIGTERM or SIGINT, then finish the requests in flight.

        `handed`: the listening socket systemd passed (activation.py), used instead of binding
        `listen:port`; closing our copy of it on stop leaves it open in systemd for the next start.
        """
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        if handed is None:
            server = await asyncio.start_server(
                self._connection, self.settings.listen, self.settings.port, backlog=BACKLOG
            )
        else:
            server = await asyncio.start_server(self._connection, sock=handed, backlog=BACKLOG)
        address, port = server.sockets[0].getsockname()[:2]
        where = {"address": address, "port": port, "socket": "systemd" if handed else "own"}
        logs.event(log, f"listening on {address}:{port}", **where)
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
        source = admission.source_of(peer)
        refused_by = self.slots.take(source)
        try:
            with metrics.CONNECTIONS.track_inprogress():
                request, outcome = await self._answer(reader, writer, peer, peer_port, refused_by)
            self._record(request, outcome, peer, source, time.monotonic() - started)
        finally:
            if refused_by is None:
                self.slots.give_back(source)
            writer.close()
            self.inflight.discard(task)

    async def _answer(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        peer_port: int,
        refused_by: admission.Cap | None,
    ) -> tuple[wire.Request | None, Outcome]:
        """Serve the one request of a connection (unless a cap refused it) and send its one reply."""
        try:
            if refused_by is not None:
                request, outcome = None, _busy(refused_by, peer)
            else:
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
        token_line = self._token_line(peer)
        received = [b""]  # what `_read` got so far, still here when the deadline cancels it
        try:
            async with asyncio.timeout(self.settings.read_timeout):
                return await self._read(reader, token_line, received)
        except TimeoutError:
            return self._at_deadline(received[0], token_line)
        except BadRequestError as exc:
            return _bad_request(exc)
        except ConnectionError:
            return Outcome(None, "reset", b"")
        except _EmptyConnectionError:
            return Outcome(None, "empty", b"")

    def _at_deadline(self, received: bytes, token_line: wire.TokenLine) -> wire.Request | Outcome:
        """The deadline ends the request: complete as it stands if only an optional token line is
        missing (an original three-line client from the ident networks), else too late."""
        try:
            parsed = wire.parse(received, token_line, self.limits, ended=True)
        except BadRequestError as exc:
            return _bad_request(exc)
        if isinstance(parsed, wire.Request):
            return parsed
        return Outcome(None, "timeout", wire.sentence(f"Timed out waiting for the {parsed.missing} line."))

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
        self, reader: asyncio.StreamReader, token_line: wire.TokenLine, received: list[bytes]
    ) -> wire.Request:
        ended = False
        while True:
            parsed = wire.parse(received[0], token_line, self.limits, ended=ended)
            if isinstance(parsed, wire.Request):
                return parsed
            if ended:
                raise BadRequestError(wire.sentence(f"Request ended before the {parsed.missing} line."))
            chunk = await reader.read(READ_CHUNK)
            if not chunk and not received[0]:
                raise _EmptyConnectionError  # a port probe or health check, not a request
            ended = not chunk  # the client half-closed: what it sent is the whole request
            received[0] += chunk

    def _record(
        self, request: wire.Request | None, outcome: Outcome, peer: str, source: str, seconds: float
    ) -> None:
        """The one log line and the metrics of a finished request. The token is never logged.

        A connection closed without a byte is a port probe or health check, not a request: it is
        counted apart and not logged, so probes neither fill the log nor skew the request figures.
        Refusals over a cap are all counted, but logged at most once per source per interval.
        """
        if outcome.label == "empty":
            metrics.PROBES.inc()
            return
        command = request.command if request else None
        metrics.observe(command or "none", outcome.label, seconds)
        message = f"{command or 'unparsed request'} from {peer}: {outcome.label}"
        extra: dict[str, object] = {}
        if outcome.label in BUSY_LABELS:
            left_out = self.refusal_log.due(source)
            if left_out is None:
                return
            extra = {"source": source, "not_logged": left_out}
            message += f" ({left_out} more from {source} not logged)" if left_out else ""
        entry = {
            "tool": outcome.tool,
            "command": command,
            "route": request.route if request else None,
            "destination": request.destination.url if request and request.destination else None,
            "peer": peer,
            "identity": ("token" if request.token else "ident") if request else None,
            "outcome": outcome.label,
            "written_to": outcome.written_to,
            "reply": outcome.reply.decode("ascii", "replace"),
            "ms": round(seconds * 1000, 2),
            **extra,
        }
        logs.event(log, message, **entry)

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


def _bad_request(exc: BadRequestError) -> Outcome:
    return Outcome(None, "fail" if exc.reply == wire.FAIL else "bad_request", exc.reply)


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


def _busy(cap: admission.Cap, peer: str) -> Outcome:
    """The reply to a connection over a cap; both say "try again", which clients retry on."""
    if cap == "per_source":
        reply = wire.sentence(f"Too many connections from {peer}; try again shortly.")
        return Outcome(None, "busy_source", reply)
    return Outcome(None, "busy", BUSY)


def build(
    settings: ProxyListener,
    fleet: config.Fleet | None,
    me: config.Proxy | None = None,
    destinations: Destinations | None = None,
    max_routes: int = MAX_ROUTES_PER_TOOL,
    reload: Callable[[], config.Fleet | None] | None = None,
) -> Listener:
    """A Listener wired to the route stores (each capping a tool at `max_routes`), policy and token
    key, under the fleet's destination rule; `me` is the proxy it runs on, when known."""
    key = tokens.load_key(Path(settings.token_key_file)) if "token" in settings.identity else None

    def connect(url: str) -> RouteStore:
        return RouteStore.from_url(url, destinations=destinations, max_routes=max_routes)

    route = ActiveRoute(
        own=connect(settings.redis),
        file=config.active_proxy_file(settings.active_proxy_file, me),
        fleet=fleet,
        me=me,
        connect=connect,
        reload=reload,
    )
    registrar = Registrar(
        route=route,
        policy=Policy.from_settings(settings, destinations),
        key=key,
        canonical_domain=settings.canonical_domain,
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
    parser.add_argument("--redis", help="this proxy's route store URL (default the local Redis)")
    parser.add_argument(
        "--proxy",
        help="the fleet's name of the proxy this runs on (default: this host's name, if the fleet lists it)",
    )
    parser.add_argument("--metrics-address", help="address of the Prometheus endpoint (default 127.0.0.1)")
    logs.add_arguments(parser)
    return parser.parse_args(argv)


def _fleet(args: argparse.Namespace) -> config.Fleet | None:
    path = config.find(args.config)
    return config.load(path) if path else None


def _destinations(fleet: config.Fleet | None, settings: ProxyListener) -> Destinations | None:
    """The fleet's destination rule, counting this listener's ports and Redis as given on the command
    line; None (the strict default) without a fleet config."""
    return Destinations.of_fleet(dataclasses.replace(fleet, proxylistener=settings)) if fleet else None


def _settings(args: argparse.Namespace, fleet: config.Fleet | None) -> ProxyListener:
    settings = fleet.proxylistener if fleet else ProxyListener()
    overrides = {
        name: value
        for name, value in (
            ("listen", args.listen), ("port", args.port), ("metrics_address", args.metrics_address),
            ("metrics_port", args.metrics_port), ("redis", args.redis),
        )
        if value is not None
    }  # fmt: skip
    return config.overridden(settings, "command line", **overrides)


def _me(args: argparse.Namespace, fleet: config.Fleet | None) -> config.Proxy | None:
    """The proxy this listener runs on: `--proxy`, else the one named as this host, else unknown."""
    if fleet is None:
        return None
    if args.proxy:
        return fleet.proxy(args.proxy)
    hostname = socket.gethostname().split(".")[0]
    return next((proxy for proxy in fleet.proxies if proxy.name == hostname), None)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the daemon until SIGTERM."""
    args = _arguments(argv)
    logs.setup(args.log_format, args.log_level)
    try:
        fleet = _fleet(args)
        settings = _settings(args, fleet)
        max_routes = fleet.dataplane.max_routes_per_tool if fleet else MAX_ROUTES_PER_TOOL
        handed = activation.inherited()
        me, destinations = _me(args, fleet), _destinations(fleet, settings)
        listener = build(settings, fleet, me, destinations, max_routes, reload=lambda: _fleet(args))
        metrics.serve(settings.metrics_address, settings.metrics_port)
        uvloop.run(
            listener.run(handed)
        )  # libuv's loop: part of what took it past 2,000/s (docs/benchmarks.md)
    except (ToolforgectlError, OSError) as exc:
        output.fail("proxylistener", exc)


if __name__ == "__main__":
    main()
