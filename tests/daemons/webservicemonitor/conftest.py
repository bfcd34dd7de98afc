"""A lab proxy (Redis, nginx with /list, proxylistener) with tool homes, and the monitor as a process."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemons.regstack import BIN, venv_env
from tests.lua.proxyclient import Proxy
from toolforgectl.adapters.processes import Process, spawn
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import config, tokens
from toolforgectl.lab import fleet


@dataclass
class Fleet:
    """The lab's proxy, a fleet config with a `webservice:` section, and the tools' homes."""

    proxy: Proxy
    config: Path
    tmp: Path

    @property
    def store(self) -> RouteStore:
        return RouteStore.from_url(self.proxy.info["redis"])

    def home(self, tool: str) -> Path:
        return self.tmp / "homes" / tool

    def add_tool(self, tool: str) -> Path:
        """A home holding the tool's token, minted with the lab's proxylistener key."""
        home = self.home(tool)
        home.mkdir(parents=True, exist_ok=True)
        key = tokens.load_key(Path(config.load(self.config).proxylistener.token_key_file))
        tokens.write_secret(home / ".proxylistener-token", tokens.mint(key, tool, 0).encode())
        return home

    def webservice(self, tool: str, *words: str) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / "webservice"), "--config", str(self.config), "--tool", tool, *words]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=venv_env())

    def monitor_once(self, *args: str, wrapper: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
        """One `webservicemonitor --once` pass (run by `wrapper`, a command prefix, when given)."""
        argv = [*wrapper, str(BIN / "webservicemonitor"), "--config", str(self.config), "--once"]
        argv += ["--metrics-port", "0"]
        return subprocess.run(
            [*argv, *args], capture_output=True, text=True, timeout=120, check=False, env=venv_env()
        )

    def monitor(self, log: Path, metrics_port: int, interval: float = 0.3) -> Process:
        """webservicemonitor running on its own, every `interval` seconds, serving its metrics."""
        argv = [str(BIN / "webservicemonitor"), "--config", str(self.config), "--interval", str(interval)]
        argv += ["--metrics-port", str(metrics_port)]
        return spawn("webservicemonitor", argv, log, "127.0.0.1", metrics_port)

    def service_log(self, tool: str) -> list[str]:
        path = self.home(tool) / "service.log"
        return path.read_text().splitlines() if path.exists() else []


def events(output: str) -> list[dict[str, Any]]:
    """The JSON log lines of a monitor run."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture
def lab_fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A lab proxy without sample tools, and a fleet config whose tools live under tmp/homes and
    whose monitor restarts them with this checkout's `webservice` (no sudo: the test is every tool)."""
    directory = tmp_path / "lab"
    state = fleet.up(directory, tools=())
    try:
        data = yaml.safe_load(Path(state.config).read_text())
        listener = data["proxylistener"]
        restart = [str(BIN / "webservice"), "--config", str(tmp_path / "fleet.yaml"), "--tool", "{tool}"]
        data["webservice"] = {
            "home": str(tmp_path / "homes" / "{tool}"),
            "local_spool": str(tmp_path / "spool"),
            "default_backend": "local",
            "proxy": "127.0.0.1",
            "proxy_port": listener["port"],
            "state_file": str(tmp_path / "monitor-state.json"),
            "restart_command": [*restart, "--backend", "{backend}", "restart"],
            "list_timeout": 2.0,
            "stop_timeout": 20.0,
        }
        (tmp_path / "homes").mkdir()
        (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(data))
        yield Fleet(Proxy(state), tmp_path / "fleet.yaml", tmp_path)
    finally:
        _stop_local_jobs(tmp_path / "spool")
        fleet.down(directory)


def _stop_local_jobs(spool: Path) -> None:
    from toolforgectl.adapters.localjobs import LocalJobs

    jobs = LocalJobs(spool)
    for job in jobs.jobs():
        jobs.stop(job.name)
