"""Cheap reachability checks of backends, for `routes show`."""

from __future__ import annotations

import socket
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
