"""Helpers for the registration path tests: a real proxylistener process, a test identd, raw sockets."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from tests.conftest import RedisServer
from toolforgectl.adapters.processes import Process, free_port, spawn
from toolforgectl.core import tokens
from toolforgectl.core.errors import LabError
from toolforgectl.core.waiting import wait_until

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

    def scrape(self) -> str:
        """The Prometheus text of its /metrics page."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as page:
            return str(page.read().decode())


def start_listener(
    tmp: Path,
    redis_url: str,
    args: tuple[str, ...] = (),
    handed: socket.socket | None = None,
    dataplane: dict[str, Any] | None = None,
    proxies: list[dict[str, Any]] | None = None,
    wrapper: Sequence[str] = (),
    **settings: Any,
) -> Listener:
    """Start proxylistener on a free loopback port with `settings` as its config section and
    `args` added to its command line; or on the listening socket `handed`, as systemd's socket
    activation passes it (`systemd_socket`). Its fleet's tools run on loopback, as the lab's
    (`dataplane` may say otherwise, and sets the per-tool route cap); its fleet's proxies are
    `proxies` (default: one, proxy-01 on 127.0.0.1). `wrapper`, a command prefix, runs it."""
    tmp.mkdir(parents=True, exist_ok=True)
    key_file = tmp / "key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    port = settings.pop("port", None) or (handed.getsockname()[1] if handed else free_port())
    metrics_port = free_port()
    section = {"listen": "127.0.0.1", "token_key_file": str(key_file), "read_timeout": 2.0}
    section |= {"active_proxy_file": str(tmp / "active-proxy"), **settings}
    fleet = {
        "proxies": proxies or [{"name": "proxy-01", "address": "127.0.0.1"}],
        "proxylistener": section,
        "dataplane": {"allow_loopback_backends": True, **(dataplane or {})},
    }
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(fleet))
    argv = [*wrapper, str(BIN / "proxylistener"), "--config", str(config), "--port", str(port)]
    argv += ["--metrics-port", str(metrics_port), "--redis", redis_url, *args]
    log = tmp / "proxylistener.log"
    if handed is None:
        process = spawn("proxylistener", argv, log, "127.0.0.1", port)
    else:
        process = _spawn_activated(argv, log, handed)
    return Listener(process, port, metrics_port, redis_url, log)


def systemd_socket(port: int = 0) -> socket.socket:
    """A listening socket on loopback as `proxylistener.socket` (templates/systemd/) makes one (the test holds
    it, as systemd does, across the listener processes it passes it to)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


# What systemd does between fork and exec for a socket-activated service.
_ACTIVATE = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.argv[2], sys.argv[2:])
"""


def _spawn_activated(argv: list[str], log: Path, handed: socket.socket) -> Process:
    """Start `argv` as systemd starts a socket-activated service: the socket as fd 3,
    LISTEN_FDS=1 and LISTEN_PID=its pid (the shim's, which exec keeps); then wait until it
    listens (the socket accepts from the start, so its port cannot tell)."""
    fd = handed.fileno()
    wrapper = [sys.executable, "-c", _ACTIVATE, str(fd), *argv]
    with log.open("ab") as out:
        popen = subprocess.Popen(
            wrapper, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(fd,)
        )
    process = Process("proxylistener", popen.pid, "127.0.0.1", handed.getsockname()[1], log, popen)
    try:
        wait_until(lambda: _listening(process), f"{argv[0]} to take over the socket")
    except BaseException:
        process.stop()
        raise
    return process


def _listening(process: Process) -> bool:
    if not process.alive():
        raise LabError(f"{process.name} exited during start; see {process.log}")
    return "listening on" in process.log.read_text()


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

    def listener(
        self,
        redis_url: str | None = None,
        args: tuple[str, ...] = (),
        handed: socket.socket | None = None,
        dataplane: dict[str, Any] | None = None,
        proxies: list[dict[str, Any]] | None = None,
        wrapper: Sequence[str] = (),
        **settings: Any,
    ) -> Listener:
        where = self.tmp / f"listener{len(self.started)}"
        url = redis_url or self.redis_url
        found = start_listener(where, url, args, handed, dataplane, proxies, wrapper, **settings)
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
