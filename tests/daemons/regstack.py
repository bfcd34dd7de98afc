"""Helpers for the registration path tests: a real proxylistener process, a test identd, raw sockets."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from tests.conftest import RedisServer
from toolforgectl.adapters.processes import Process, free_port, spawn
from toolforgectl.core import tokens

BIN = Path(sys.executable).parent
KEY = b"k" * 32


@dataclass
class Listener:
    """A proxylistener running as its own process."""

    process: Process
    port: int
    metrics_port: int
    redis_url: str
    log: Path
    key: bytes = KEY

    def token(self, tool: str, generation: int = 0) -> str:
        return tokens.mint(self.key, tool, generation)

    def log_lines(self) -> list[dict[str, Any]]:
        """Every log line written so far (each must be one JSON object)."""
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def log_entries(self) -> list[dict[str, Any]]:
        """The per-request log lines written so far."""
        return [entry for entry in self.log_lines() if "outcome" in entry]


def start_listener(tmp: Path, redis_url: str, args: tuple[str, ...] = (), **settings: Any) -> Listener:
    """Start proxylistener on a free loopback port with `settings` as its config section and
    `args` added to its command line."""
    tmp.mkdir(parents=True, exist_ok=True)
    key_file = tmp / "key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    port, metrics_port = free_port(), free_port()
    section = {"listen": "127.0.0.1", "token_key_file": str(key_file), "read_timeout": 2.0}
    section |= {"active_proxy_file": str(tmp / "active-proxy"), **settings}
    fleet = {"proxies": [{"name": "proxy-01", "address": "127.0.0.1"}], "proxylistener": section}
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(fleet))
    argv = [str(BIN / "proxylistener"), "--config", str(config), "--port", str(port)]
    argv += ["--metrics-port", str(metrics_port), "--redis", redis_url, *args]
    log = tmp / "proxylistener.log"
    process = spawn("proxylistener", argv, log, "127.0.0.1", port)
    return Listener(process, port, metrics_port, redis_url, log)


@dataclass
class Stack:
    """The test's Redis and a way to start listeners against it; listeners stop at teardown."""

    redis: RedisServer
    tmp: Path
    started: list[Listener] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def client(self) -> redis.Redis:
        return self.redis.client()

    def listener(self, redis_url: str | None = None, args: tuple[str, ...] = (), **settings: Any) -> Listener:
        where = self.tmp / f"listener{len(self.started)}"
        found = start_listener(where, redis_url or self.redis_url, args, **settings)
        self.started.append(found)
        return found

    def stop(self) -> None:
        for listener in self.started:
            listener.process.stop()


def exchange(port: int, payload: bytes, source: str = "127.0.0.1", timeout: float = 15.0) -> bytes:
    """Send `payload` from `source` as the original clients do, and read everything until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(payload)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    """Every byte until the peer closes."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


class Identd:
    """A test RFC 1413 server on a loopback high port that answers `user` for every query."""

    def __init__(self, user: str = "tools.mytool") -> None:
        self.user = user
        self.queries: list[str] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                query = self.rfile.readline().decode().strip()
                outer.queries.append(query)
                ports = outer.ports_override or query
                self.wfile.write(f"{ports} : USERID : UNIX : {outer.user}\r\n".encode())

        self.ports_override: str | None = None
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def route_keys(client: redis.Redis) -> dict[str, Any]:
    """Every route-bearing key and its content, to prove a request changed nothing."""
    found: dict[str, Any] = {}
    for key in client.scan_iter(match="*"):
        if key.startswith(("prefix:", "redirect:", "toolforgectl:routes:version")):
            found[key] = client.hgetall(key) if client.type(key) == "hash" else client.get(key)
    return found


def venv_env() -> dict[str, str]:
    """The environment for child processes, with the venv's console scripts on PATH."""
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
