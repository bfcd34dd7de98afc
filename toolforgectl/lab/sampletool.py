"""A tiny sample tool for the lab and tests: echoes each request as JSON, and echoes WebSocket messages.

Run as `python -m toolforgectl.lab.sampletool --name NAME --port PORT`. It answers every path with
`{"tool", "method", "uri", "headers"}`, so a test can see exactly what the proxy passed on, and
writes the same JSON as one line to stdout (its log), so a test can tell which tool saw a request.
`--header "Name: value"` adds a response header (a tool that sends Service-Worker-Allowed);
`--relay https://HOST:PORT` makes it a relay instead: each request is sent on there as it came,
headers and all, and the answer passed back (a tool whose server points back at the proxy).
With `?redirect_to=/path` (not relaying) it answers a 302 to `http://<Host>/path` instead, as a web
server that does not know it is behind TLS does.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import http.client
import json
import signal
import ssl
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85"
_MAX_HEADER_LINES = 100


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]] | None:
    """Request line and headers (lower-cased names), or None when the client closed."""
    line = await reader.readline()
    if not line:
        return None
    method, uri, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        raw = (await reader.readline()).decode("latin-1").rstrip("\r\n")
        if not raw:
            break
        name, _, value = raw.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, uri, headers


async def _websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str) -> None:
    accept = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest()).decode()
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
    )
    while True:
        first, second = await reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        mask = await reader.readexactly(4) if second & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(length)))
        if first & 0x0F == 0x8:  # close
            writer.write(b"\x88\x00")
            return
        if length > 125:
            return  # the sample only echoes short messages
        writer.write(bytes([0x80 | (first & 0x0F), length]) + payload)
        await writer.drain()


@dataclass(frozen=True)
class Options:
    """What this sample tool is: its name, extra response headers, and where it relays to (if)."""

    name: str
    headers: tuple[tuple[str, str], ...] = ()
    relay: str = ""


def _relay(target: str, method: str, uri: str, headers: dict[str, str], body: bytes) -> tuple[str, bytes]:
    """Send the request on to `target` exactly as it came (no certificate check): status line, body."""
    parts = urlsplit(target)
    unchecked = ssl.create_default_context()
    unchecked.check_hostname, unchecked.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443, context=unchecked, timeout=30)
    try:
        conn.request(method, uri, body=body or None, headers=headers)
        response = conn.getresponse()
        return f"{response.status} {response.reason}", response.read()
    finally:
        conn.close()


def _redirect_location(uri: str, headers: dict[str, str]) -> str | None:
    """The `http://` Location that `?redirect_to=/path` asks for, or None."""
    target = parse_qs(urlsplit(uri).query).get("redirect_to", [""])[0]
    if target.startswith("/") and target.isprintable() and " " not in target:  # nothing to inject
        return f"http://{headers.get('host', '')}{target}"
    return None


async def _serve(options: Options, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (head := await _read_head(reader)) is not None:
            method, uri, headers = head
            seen = {"tool": options.name, "method": method, "uri": uri, "headers": headers}
            print(json.dumps(seen), flush=True)
            if headers.get("upgrade", "").lower() == "websocket":
                await _websocket(reader, writer, headers.get("sec-websocket-key", ""))
                return
            sent = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            status, kind, body = "200 OK", "application/json", json.dumps(seen).encode()
            answer_headers = list(options.headers)
            if options.relay:
                status, body = await asyncio.to_thread(_relay, options.relay, method, uri, headers, sent)
                kind = "text/html"
            elif (location := _redirect_location(uri, headers)) is not None:
                status, body = "302 Found", b""
                answer_headers.append(("Location", location))
            extra = "".join(f"{name}: {value}\r\n" for name, value in answer_headers)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n{extra}".encode()
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, OSError):
        pass
    finally:
        writer.close()


async def _main(options: Options, host: str, port: int, tls: ssl.SSLContext | None) -> None:
    server = await asyncio.start_server(lambda r, w: _serve(options, r, w), host, port, ssl=tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def command(
    name: str,
    host: str,
    port: int | str,
    tls: tuple[str, str] | None = None,
    headers: tuple[str, ...] = (),
    relay: str = "",
) -> list[str]:
    """The command line that runs sample tool `name` on `host:port` (https with the `tls` pair).

    `port` may be webservice-runner's placeholder `{port}`, which it replaces with the port it picked.
    `headers` ("Name: value") are added to every answer; `relay` makes it relay to that https origin.
    """
    argv = [sys.executable, "-m", "toolforgectl.lab.sampletool", "--name", name, "--host", host]
    argv += ["--port", str(port), *(["--tls", *tls] if tls else [])]
    for header in headers:
        argv += ["--header", header]
    return [*argv, *(["--relay", relay] if relay else [])]


def _start_stubborn_child() -> None:
    """A `sleep` that ignores SIGTERM: an ignored signal stays ignored across fork and exec, so it
    ignores it from its first instruction on. Only SIGKILL ends it."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        subprocess.Popen(["sleep", "infinity"])
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="Serve https with this pair.")
    parser.add_argument(
        "--stubborn-child",
        action="store_true",
        help="Also run a child that ignores SIGTERM, as a badly behaved worker does (tests `lab down`).",
    )
    parser.add_argument("--header", action="append", default=[], help='"Name: value" added to answers.')
    parser.add_argument("--relay", default="", help="Relay every request to this https origin.")
    args = parser.parse_args()
    if args.stubborn_child:
        _start_stubborn_child()
    pairs = tuple((name.strip(), value.strip()) for name, _, value in (h.partition(":") for h in args.header))
    options = Options(args.name, pairs, args.relay)
    tls = None
    if args.tls:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(*args.tls)
    asyncio.run(_main(options, args.host, args.port, tls))


if __name__ == "__main__":
    main()
