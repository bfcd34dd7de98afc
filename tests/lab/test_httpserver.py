"""The lab's fake APIs' HTTP server: a client hanging up is routine, a fault in the fake is not."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from toolforgectl.lab.httpserver import LabHTTPServer


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if self.path == "/fault":
            raise ValueError("a fault in the fake")
        body = b"x" * 100_000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Observed(LabHTTPServer):
    """Tells when a connection is over: socketserver closes it after reporting any error."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.closed = threading.Semaphore(0)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.closed.release()


@contextmanager
def _serving() -> Iterator[_Observed]:
    server = _Observed()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _request_and_reset(server: _Observed, path: str) -> None:
    """Send a request and hang up at once with a reset, as a killed client's kernel does."""
    client = socket.create_connection(server.server_address[:2], timeout=10)
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: lab\r\n\r\n".encode())
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def test_clients_that_hang_up_leave_no_traceback_but_a_fault_in_the_fake_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _serving() as server:
        for _ in range(5):
            _request_and_reset(server, "/")
        for _ in range(5):
            assert server.closed.acquire(timeout=10)
        assert "Traceback" not in capsys.readouterr().err

        _request_and_reset(server, "/fault")
        assert server.closed.acquire(timeout=10)
        assert "ValueError: a fault in the fake" in capsys.readouterr().err
