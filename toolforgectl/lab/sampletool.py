"""A tiny sample tool for the lab and tests: echoes each request as JSON, and echoes WebSocket messages.

Run as `python -m toolforgectl.lab.sampletool --name NAME --port PORT`. It answers every path with
`{"tool", "method", "uri", "headers"}`, so a test can see exactly what the proxy passed on; with
`?redirect_to=/path` it answers a 302 to `http://<Host>/path` instead, as a web server that does
not know it is behind TLS does.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import signal
import ssl
import sys
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


def _answer(name: str, method: str, uri: str, headers: dict[str, str]) -> bytes:
    """The echo as JSON, or the redirect `?redirect_to=` asks for."""
    target = parse_qs(urlsplit(uri).query).get("redirect_to", [""])[0]
    if target.startswith("/") and target.isprintable() and " " not in target:  # nothing to inject
        location = f"http://{headers.get('host', '')}{target}"
        return f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
    body = json.dumps({"tool": name, "method": method, "uri": uri, "headers": headers}).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def _serve(name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (head := await _read_head(reader)) is not None:
            method, uri, headers = head
            if headers.get("upgrade", "").lower() == "websocket":
                await _websocket(reader, writer, headers.get("sec-websocket-key", ""))
                return
            await reader.readexactly(int(headers.get("content-length", "0") or 0))
            writer.write(_answer(name, method, uri, headers))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def _main(name: str, host: str, port: int, tls: ssl.SSLContext | None) -> None:
    server = await asyncio.start_server(lambda r, w: _serve(name, r, w), host, port, ssl=tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def command(name: str, host: str, port: int | str, tls: tuple[str, str] | None = None) -> list[str]:
    """The command line that runs sample tool `name` on `host:port` (https with the `tls` pair).

    `port` may be webservice-runner's placeholder `{port}`, which it replaces with the port it picked.
    """
    argv = [sys.executable, "-m", "toolforgectl.lab.sampletool", "--name", name, "--host", host]
    return [*argv, "--port", str(port), *(["--tls", *tls] if tls else [])]


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="Serve https with this pair.")
    args = parser.parse_args()
    tls = None
    if args.tls:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(*args.tls)
    asyncio.run(_main(args.name, args.host, args.port, tls))


if __name__ == "__main__":
    main()
