"""The lab's floating IP: a loopback address whose ports forward to wherever the cloud points it.

A Neutron router DNATs a floating IP to the fixed IP of the port it is associated with; move the
association and new connections reach the new server, while those already open stay where they
are. This process does the same in user space: it listens on the floating IP's address (a loopback
address such as 127.0.0.10) on the proxy's public ports and, for each new connection, reads where
the lab's cloud points the floating IP now (its state file, written by lab/cloudapi.py; never our
fleet config, which may be what is wrong) and relays the bytes to the same port there.

As with DNAT the backend sees the client's own address: the outgoing connection is made from it
(any 127.0.0.0/8 address can be bound on Linux). Run it as its own process:

    python -m toolforgectl.lab.floatingip --state DIR/cloud.json --address 127.0.0.10 --port 80 --port 443
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from toolforgectl.lab.cloudstate import forward_target

CONNECT_TIMEOUT = 5.0
CHUNK = 65536


class Forwarder:
    """Relays TCP connections to `address`:port to the floating IP's current fixed IP, same port."""

    def __init__(self, state: Path, address: str, ports: Sequence[int]) -> None:
        self.state = state
        self.address = address
        self.ports = tuple(ports)
        self._servers: list[asyncio.Server] = []
        self._relays: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on every port (all bound when this returns)."""
        for port in self.ports:
            server = await asyncio.start_server(
                functools.partial(self._accepted, port=port), self.address, port, reuse_address=True
            )
            self._servers.append(server)

    async def stop(self) -> None:
        """Stop listening and cut every relayed connection."""
        for server in self._servers:
            server.close()
        for relay in list(self._relays):
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    def target(self) -> str | None:
        """The fixed IP new connections go to now (None: the floating IP points nowhere)."""
        try:
            return forward_target(self.state, self.address)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"floatingip: cannot read {self.state}: {exc}", file=sys.stderr)
            return None

    async def _accepted(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, port: int
    ) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection callback always runs in a task
        self._relays.add(task)
        try:
            await self._relay(reader, writer, port)
        finally:
            self._relays.discard(task)
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        target = self.target()
        if target is None:
            return  # like a floating IP with no port: nothing answers, the connection just ends
        client = writer.get_extra_info("peername")[0]
        upstream = await _connect(target, port, client)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        try:
            await _both_ways(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()


async def _connect(
    target: str, port: int, client: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection to `target`:`port` from the client's address if it can be bound, else from any."""
    for source in ((client, 0), None):
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(target, port, local_addr=source), CONNECT_TIMEOUT
            )
        except OSError as exc:
            if source is None or exc.errno not in (errno.EADDRNOTAVAIL, errno.EADDRINUSE):
                print(f"floatingip: cannot reach {target}:{port}: {exc}", file=sys.stderr)
                return None
        except TimeoutError:
            print(f"floatingip: {target}:{port} did not answer in {CONNECT_TIMEOUT:g}s", file=sys.stderr)
            return None
    return None


async def _both_ways(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Relay until both directions ended; an error in either (a reset) ends both at once."""
    pipes = {asyncio.ensure_future(_pipe(reader, up_writer)), asyncio.ensure_future(_pipe(up_reader, writer))}
    try:
        while pipes:
            done, pipes = await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            if not all(task.result() for task in done):
                break  # a broken side: the other direction has nowhere to go
    finally:
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> bool:
    """Copy `src` to `dst` until EOF, then half-close `dst`; False if either side broke."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except OSError:
        return False
    return True


async def _serve(forwarder: Forwarder) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await forwarder.start()
    await stopping.wait()
    await forwarder.stop()


def main(argv: list[str] | None = None) -> None:
    """Forward the floating IP's ports until SIGTERM (the lab starts it this way)."""
    parser = argparse.ArgumentParser(
        prog="python -m toolforgectl.lab.floatingip",
        description="Forward a floating IP's TCP ports to the server the lab's cloud associates it with.",
    )
    parser.add_argument("--state", type=Path, required=True, help="the lab cloud's state file (cloud.json)")
    parser.add_argument("--address", required=True, help="the floating IP, a loopback address to listen on")
    parser.add_argument("--port", type=int, action="append", required=True, help="a port to forward (repeat)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(Forwarder(args.state, args.address, args.port)))


if __name__ == "__main__":
    main()
