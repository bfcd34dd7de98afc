"""Running kube2proxy as a real process for tests: its config, its log, its metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from toolforgectl.adapters.processes import free_port
from toolforgectl.core.waiting import wait_until


def write_config(
    directory: Path, redis_url: str, kubeconfig: Path, *, active: str = "proxy-01", **settings: Any
) -> Path:
    """A fleet config with two proxies (proxy-01 writes to `redis_url`) and a kube2proxy section."""
    section = {
        "kubeconfig": str(kubeconfig),
        "active_proxy_file": str(directory / "active-proxy"),
        "active_check_interval": 0.2,
        "metrics_port": free_port(),
        "watch_timeout": 30,
        **settings,
    }
    doc = {
        "proxies": [
            {
                "name": "proxy-01",
                "address": "127.0.0.1",
                "redis": redis_url,
                # Read only when the section's active_proxy_file is null (each proxy its own file).
                "active_proxy_file": str(directory / "proxy-01.active-proxy"),
            },
            {"name": "proxy-02", "address": "127.0.0.2", "redis": "redis://127.0.0.2:1/0"},
        ],
        "active_proxy": active,
        "kube2proxy": section,
        # The test clusters' Service IPs are on loopback (127.96.0.0/16).
        "dataplane": {"allow_loopback_backends": True},
    }
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@dataclass
class Daemon:
    """A kube2proxy process started for one test."""

    popen: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """Every log line so far, each one JSON object (core/logs.py)."""
        return [json.loads(line) for line in self.log_text().splitlines()]

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample on /metrics, keyed by (name, sorted labels)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        """One sample's value (0 when it has not been recorded yet)."""
        try:
            samples = self.metrics()
        except OSError:
            return 0.0
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def listed(self) -> bool:
        """Whether the first list is done (counted before its routes are written: to see a
        route of the first sync, wait for the route itself)."""
        return self.metric("kube2proxy_relists_total", reason="start") >= 1

    def wait_for_checks(self, more: int) -> None:
        """Wait until the daemon has re-read who is active `more` more times: each time, a daemon
        that believed itself active would have listed or written before the next check."""
        start = self.metric("kube2proxy_active_checks_total")
        what = f"{more} more active-proxy checks"
        wait_until(lambda: self.metric("kube2proxy_active_checks_total") >= start + more, what)

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=15)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)


def start_daemon(config: Path, log: Path, proxy: str = "proxy-01", wrapper: Sequence[str] = ()) -> Daemon:
    """`python -m toolforgectl.daemons.kube2proxy` as a separate process, logging to `log` (run by
    `wrapper`, a command prefix, when given)."""
    port = yaml.safe_load(config.read_text())["kube2proxy"]["metrics_port"]
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [
                *wrapper,
                sys.executable,
                "-m",
                "toolforgectl.daemons.kube2proxy",
                "--config",
                str(config),
                "--proxy",
                proxy,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return Daemon(popen, log, port)


@contextmanager
def launcher(directory: Path, redis_url: str, kubeconfig: Path) -> Iterator[Callable[..., Daemon]]:
    """A `launch(active=..., **settings)` that writes the config and starts kube2proxy against
    `redis_url` and `kubeconfig`; every daemon it started is killed on exit."""
    started: list[Daemon] = []

    def launch(active: str = "proxy-01", **settings: Any) -> Daemon:
        config = write_config(directory, redis_url, kubeconfig, active=active, **settings)
        started.append(start_daemon(config, directory / "kube2proxy.log"))
        return started[-1]

    try:
        yield launch
    finally:
        for daemon in started:
            daemon.kill()
