"""Cheap reachability checks: of backends, for `routes show`; of a proxy's site, for failover."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reachability:
    """Whether a TCP connect to a backend succeeded, how fast, or why not."""

    reachable: bool
    connect_ms: float | None
    error: str | None


def tcp_connect(backend_url: str, timeout: float = 0.5) -> Reachability:
    """Try one TCP connect to the host and port of `backend_url`."""
    parts = urlsplit(backend_url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if host is None or port is None:
        return Reachability(False, None, "backend URL has no usable host and port")
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return Reachability(False, None, exc.strerror or type(exc).__name__)
    return Reachability(True, round((time.monotonic() - started) * 1000, 2), None)


@dataclass(frozen=True)
class Answer:
    """What one HTTP(S) request got: its status, or why there was none."""

    status: int | None
    error: str | None = None

    @property
    def served(self) -> bool:
        """Whether the proxy answered and did not report a failure of its own (5xx)."""
        return self.status is not None and self.status < 500


def https_get(
    address: str, port: int, path: str, host: str | None = None, timeout: float = 5.0, tls: bool = True
) -> Answer:
    """GET `path` from `address:port` (a proxy, or the floating IP) with Host `host`, on a new
    connection. The certificate is not checked: this asks whether a given machine serves, and a
    proxy's certificate names the public domain, not the address asked."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = (
        http.client.HTTPSConnection(address, port, timeout=timeout, context=context)
        if tls
        else http.client.HTTPConnection(address, port, timeout=timeout)
    )
    try:
        connection.request("GET", path, headers={"Host": host} if host else {})
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
    finally:
        connection.close()
    return Answer(response.status)
