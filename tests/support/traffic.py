"""What visitors and grid jobs do to a lab while an operation runs: requests and registrations.

Failover is judged by what clients see (issue #11, sections 6 and 7): requests sent through the
floating IP the whole time (how many failed, the longest stretch without a successful answer) and
registrations arriving throughout over the real 8282 protocol, each with the clients' default
retries (how many failed, and whether every one acknowledged with `ok` is still in Redis after).
The failover tests and bench/failover.py both drive these two loads; they live with the tests
because they use the daemons' 8282 client, which the lab's code may not import (import-linter).
"""

from __future__ import annotations

import http.client
import itertools
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from toolforgectl.core import activeproxy, wire
from toolforgectl.core.errors import RegistrationError
from toolforgectl.daemons.clients import proxyclient


@dataclass
class RequestReport:
    """What visitors saw: requests sent, the failed ones (when and why), the longest gap."""

    sent: int = 0
    failures: list[tuple[float, str]] = field(default_factory=list)
    longest_gap: float = 0.0  # seconds between two successful answers (or the start and the first)

    @property
    def failed(self) -> int:
        """How many requests got no good answer."""
        return len(self.failures)


class RequestLoad:
    """Visitors: `rate` requests a second, each on a new connection, to `paths` at `base`.

    A new connection per request, as distinct visitors make, so each one reaches wherever the
    floating IP points at the moment. A response counts as good when its status is `expect`."""

    def __init__(
        self,
        host: str,
        port: int,
        paths: tuple[str, ...],
        *,
        rate: float = 40.0,
        tls: bool = True,
        expect: int = 200,
        timeout: float = 5.0,
    ) -> None:
        self.host, self.port, self.paths = host, port, paths
        self.interval, self.tls, self.expect, self.timeout = 1.0 / rate, tls, expect, timeout
        self.report = RequestReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-load", daemon=True)
        self._context = ssl.create_default_context()
        self._context.check_hostname = False
        self._context.verify_mode = ssl.CERT_NONE  # the lab's certificate is its own

    def __enter__(self) -> RequestLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> RequestReport:
        """Stop sending; the report is final when this returns."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.report

    def _run(self) -> None:
        last_good = time.monotonic()
        for path in itertools.cycle(self.paths):
            started = time.monotonic()
            problem = self._one(path)
            self.report.sent += 1
            now = time.monotonic()
            if problem is None:
                self.report.longest_gap = max(self.report.longest_gap, now - last_good)
                last_good = now
            else:
                self.report.failures.append((time.time(), f"{path}: {problem}"))
            if self._stop.wait(max(0.0, self.interval - (now - started))):
                break
        self.report.longest_gap = max(self.report.longest_gap, time.monotonic() - last_good)

    def _one(self, path: str) -> str | None:
        connection: http.client.HTTPConnection
        if self.tls:
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
        return None if response.status == self.expect else f"HTTP {response.status}"


@dataclass
class RegistrationReport:
    """What grid jobs saw: each registration acknowledged with `ok`, and the failed ones."""

    acknowledged: list[tuple[str, str, str]] = field(default_factory=list)  # (tool, route, backend)
    failures: list[tuple[float, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Registrations that failed after the client's retries."""
        return len(self.failures)

    def missing(self, routes_of: Callable[[str], dict[str, str]]) -> list[tuple[str, str, str]]:
        """The acknowledged registrations that `routes_of(tool)` (one Redis) does not hold."""
        return [
            (tool, route, backend)
            for tool, route, backend in self.acknowledged
            if routes_of(tool).get(route) != backend
        ]


class RegistrationLoad:
    """Grid jobs: `rate` registrations a second, each a new route of one of `tokens`' tools.

    Each finds the proxy as a grid node does (its active-proxy file, read every time) and
    registers through the real 8282 client with its default retries, so a failover's effect on
    webservices starting during it is measured as they would feel it. Route n of a tool is
    `/load-<n>`, pointing at `http://<own address>:<port>` with a port of its own, so every
    acknowledged registration can be looked up afterwards."""

    def __init__(
        self,
        active_proxy_file: Path,
        port: int,
        tokens: dict[str, str],
        *,
        rate: float = 4.0,
        first_backend_port: int = wire.PORT_MIN,
        resolve: Callable[[str], str] = lambda name: name,
    ) -> None:
        self.active_proxy_file, self.port, self.tokens = active_proxy_file, port, tokens
        self.resolve = resolve  # the lab's names are not in DNS: its fleet config resolves them
        self.interval = 1.0 / rate
        self.report = RegistrationReport()
        self._ports = itertools.count(first_backend_port)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> RegistrationLoad:
        pacer = threading.Thread(target=self._pace, name="registration-load", daemon=True)
        self._threads.append(pacer)
        pacer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> RegistrationReport:
        """Start no more registrations and wait for those under way (their retries included)."""
        self._stop.set()
        for thread in list(self._threads):
            thread.join()
        return self.report

    def _pace(self) -> None:
        # Each registration in its own thread: a client retrying for up to 19.5 s must not hold
        # back the ones after it, as it would not on a real grid.
        for n, tool in enumerate(itertools.cycle(sorted(self.tokens))):
            worker = threading.Thread(target=self._register, args=(tool, n), daemon=True)
            self._threads.append(worker)
            worker.start()
            if self._stop.wait(self.interval):
                return

    def _register(self, tool: str, n: int) -> None:
        route, port = f"/load-{n}", next(self._ports)
        backend: list[str] = []

        def payload(own: str) -> bytes:
            backend[:] = [f"http://{own}:{port}"]
            return wire.encode(wire.REGISTER, route, backend[0], self.tokens[tool])

        try:
            host = activeproxy.read(self.active_proxy_file).host
            if host is None:
                raise RegistrationError("the active-proxy file is empty (registration is off)")
            where = proxyclient.Target(
                self.resolve(host),
                self.port,
                timeout=5.0,
                retries=proxyclient.RETRIES,
                token=self.tokens[tool],
            )
            proxyclient.call(where, payload)
        except RegistrationError as exc:
            with self._lock:
                self.report.failures.append((time.time(), f"{tool} {route}: {exc}"))
            return
        with self._lock:
            self.report.acknowledged.append((tool, route, backend[0]))
