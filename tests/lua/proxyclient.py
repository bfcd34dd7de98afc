"""Talking to a lab proxy from tests: HTTPS with the lab's own CA, plain HTTP, and a WebSocket handshake."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import wait_until
from toolforgectl.adapters.processes import Process, start_redis_from
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core.errors import RouteStoreError
from toolforgectl.lab import fleet
from toolforgectl.lab.state import LabState, ProcessRecord


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Proxy:
    """URLs and the CA of a running lab proxy."""

    state: LabState

    @property
    def info(self) -> dict[str, str]:
        return self.state.proxies[fleet.PROXY_NAME]

    def port(self, kind: str) -> int:
        return int(self.info[kind].rsplit(":", 1)[1])

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.info["certificate"])

    def get(self, path: str, headers: dict[str, str] | None = None, kind: str = "https") -> Reply:
        """One GET on a fresh connection (https, http or internal)."""
        return self.request("GET", path, headers=headers, kind=kind)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        kind: str = "https",
    ) -> Reply:
        """One request on a fresh connection (https, http or internal)."""
        if kind == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port("https"), context=self.tls(), timeout=10
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port(kind), timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
        finally:
            conn.close()

    def route_version(self) -> int | None:
        """The route store version nginx routes by (internal /route-version); None before its first poll."""
        version = self.get("/route-version", kind="internal").json()["version"]
        return None if version is None else int(version)

    def caught_up(self) -> int:
        """Wait until nginx routes by the route store's current version, and return that version.

        From then on requests see every write made so far, and what the slow path caches stays
        fresh until the next write, so the next request takes the path a test expects: no sleeping
        past the version watcher's poll.
        """
        wanted = RouteStore.from_url(self.info["redis"]).version()

        def seen() -> bool:
            version = self.route_version()
            return version is not None and version >= wanted

        wait_until(seen, f"nginx to route by route store version {wanted}", timeout=10, interval=0.005)
        return wanted

    def backend_of(self, path: str) -> str | None:
        """Which sample tool answered `path` (None if it was not a sample tool's answer)."""
        reply = self.get(path)
        if reply.status != 200:
            return None
        return str(reply.json()["tool"])

    @contextmanager
    def websocket(
        self, path: str, upgrade: str = "websocket", headers: dict[str, str] | None = None
    ) -> Iterator[tuple[ssl.SSLSocket, str]]:
        """A raw TLS socket after the Upgrade request (`Upgrade: <upgrade>`, and `headers`), and
        nginx's status line."""
        raw = socket.create_connection(("127.0.0.1", self.port("https")), timeout=10)
        sock = self.tls().wrap_socket(raw, server_hostname="localhost")
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: {upgrade}\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        try:
            yield sock, head.decode().split("\r\n", 1)[0]
        finally:
            sock.close()


def ws_send_text(sock: ssl.SSLSocket, text: str) -> None:
    """Send one masked text frame (clients must mask)."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)


def ws_receive_text(sock: ssl.SSLSocket) -> str:
    """Read one short unmasked text frame."""
    header = sock.recv(2)
    return sock.recv(header[1] & 0x7F).decode()


def until(check: Callable[[], bool], timeout: float) -> float:
    """Poll `check` until it is true; return how long that took, or raise after `timeout` seconds."""
    start = time.monotonic()
    wait_until(check, "the condition", timeout, interval=0.005)
    return time.monotonic() - start


def access_log_line(proxy: Proxy, path: str) -> str:
    """The one access log line of the request for `path` (nginx writes it just after the answer)."""
    log = Path(proxy.state.dir) / fleet.PROXY_NAME / "logs" / "access.log"
    until(lambda: f" {path} " in log.read_text(), timeout=5)
    lines = [line for line in log.read_text().splitlines() if f" {path} " in line]
    assert len(lines) == 1, lines
    return lines[0]


def error_log(proxy: Proxy) -> str:
    """The lab proxy's nginx error log, as written so far."""
    return (Path(proxy.state.dir) / fleet.PROXY_NAME / "logs" / "error.log").read_text()


def lab_redis(proxy: Proxy) -> ProcessRecord:
    """The lab's redis-server, to stop, pause or restart."""
    return next(p for p in proxy.state.processes if p.role == "redis")


@contextmanager
def redis_answering(proxy: Proxy) -> Iterator[None]:
    """The lab's Redis up for the block: started again (and stopped after) if a test stopped it.

    `lab down` with its Redis gone stops the tools' runners while they cannot unregister, and each
    keeps retrying until down kills it after its 10 s grace: down itself is right, the wait is not
    what these tests are about."""
    try:
        RouteStore.from_url(proxy.info["redis"]).ping()
    except RouteStoreError:
        restarted = restart_redis(proxy)
        try:
            yield
        finally:
            restarted.stop()
        return
    yield


def restart_redis(proxy: Proxy) -> Process:
    """Start the lab's stopped redis-server again, from its rendered redis.conf (its AOF is reloaded)."""
    record = lab_redis(proxy)
    conf = Path(proxy.info["conf_dir"]) / "redis.conf"
    return start_redis_from(conf, record.host, record.port, conf.parent.parent / "logs" / "redis.log")
