"""webservice-runner: register a free port with the active proxy, run the web server on it, unregister.

    webservice-runner [--proxy HOST] [--port N] -- python3 -m http.server

The server command gets the port as `$PORT` (name set by --port-env), and in its arguments:
wherever `{port}` appears, else appended as the last argument (portgrabber's convention; turn
that off with --no-append-port for servers that read only $PORT).

Unlike the original, which exec'd the server and so could never clean up, the runner stays as
the server's parent: it forwards SIGTERM, SIGINT and SIGHUP to the server, waits for it, and then
unregisters, so the route disappears with the server. (It cannot unregister after SIGKILL or a
node crash; the grid epilog's portreleaser covers that.) The exit status is the server's. An
empty /etc/active-proxy skips registration but still runs the server.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

from toolforgectl.adapters.processes import free_port, server_ports
from toolforgectl.core import logs, output, wire
from toolforgectl.core.errors import RegistrationError
from toolforgectl.daemons.clients import proxyclient
from toolforgectl.daemons.clients.proxyclient import Target

PROG = "webservice-runner"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

log = logging.getLogger(PROG)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    proxyclient.add_arguments(parser)
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="port to serve on (default: a free one outside the kernel's ephemeral range)",
    )
    parser.add_argument("--own-ip", help="address to register (default: the one the proxy sees us from)")
    parser.add_argument("--port-env", default="PORT", help="environment variable carrying the port")
    parser.add_argument(
        "--no-canonical", action="store_true", help="send `register`, not `registerCanonical`"
    )
    parser.add_argument(
        "--no-append-port", action="store_true", help="without {port} in the command, do not append the port"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the web server command")
    args = parser.parse_args(argv)
    args.command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not args.command:
        parser.error("give the web server command after --")
    return args


def register(where: Target, args: argparse.Namespace, port: int) -> str:
    """Register `http://<own ip>:<port>`; returns the registered destination."""
    command = wire.REGISTER if args.no_canonical else wire.REGISTER_CANONICAL
    chosen: list[str] = []

    def payload(own: str) -> bytes:
        chosen[:] = [f"http://{args.own_ip or own}:{port}"]
        return wire.encode(command, args.route, chosen[0], where.token)

    proxyclient.call(where, payload)
    return chosen[0]


def unregister(where: Target, route: str) -> None:
    """Remove the route; a failure is reported but does not change the exit status."""
    try:
        proxyclient.call(where, lambda _own: wire.encode(wire.UNREGISTER, route, None, where.token))
    except RegistrationError as exc:
        log.warning("could not unregister: %s", exc)


def server_argv(command: list[str], port: int, append: bool) -> list[str]:
    """The server command with the port filled in at `{port}`, or appended when there is none."""
    if any("{port}" in part for part in command):
        return [part.replace("{port}", str(port)) for part in command]
    return [*command, str(port)] if append else list(command)


def serve(argv: list[str], port: int, port_env: str, early: list[int]) -> int:
    """Run the web server as a child, forwarding termination signals; its exit status.

    `early` holds signals that arrived while registering; the child gets them at once, so a job
    stopped during start-up still ends through the normal path (and is unregistered).
    """
    try:
        child = subprocess.Popen(argv, env={**os.environ, port_env: str(port)})
    except OSError as exc:
        log.error("cannot start %s: %s", argv[0], exc.strerror)
        return 127

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    for signum in early:
        child.send_signal(signum)
    code = child.wait()
    return 128 - code if code < 0 else code


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry."""
    args = _arguments(argv)
    logs.setup(args.log_format, args.log_level)
    early: list[int] = []
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: early.append(signum))
    try:
        where = proxyclient.target(args)
        # Any port the proxy accepts, but none the kernel may give an outgoing connection.
        port = args.port or free_port("", server_ports(wire.PORT_MIN, wire.PORT_MAX))
        if where is not None:
            destination = register(where, args, port)
            log.info("registered %s with %s", destination, where.host)
    except RegistrationError as exc:
        output.fail(PROG, exc)
    try:
        argv = server_argv(args.command, port, append=not args.no_append_port)
        code = serve(argv, port, args.port_env, early)
    finally:
        if where is not None:
            unregister(where, args.route)
    sys.exit(code)


if __name__ == "__main__":
    main()
