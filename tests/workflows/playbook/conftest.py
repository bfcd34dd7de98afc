"""A fleet of two proxies (two real redis-servers), and the demo CLI as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, CliResult, RedisServer
from toolforgectl.adapters.processes import start_redis


@dataclass
class DemoFleet:
    """Where a demo run keeps everything: its config, its state dir and its two proxies' Redis."""

    config: Path
    state: Path
    work: Path
    redis: list[RedisServer]

    def lock(self, name: str = "demo") -> list[dict[str, str] | None]:
        """The lock `name` as each proxy's Redis holds it (None: free)."""
        found = [server.client().get(f"toolforgectl:lock:{name}") for server in self.redis]
        return [json.loads(value) if value else None for value in found]

    def audit(self, run: str) -> list[dict[str, object]]:
        """The JSONL audit of `run`, one dict per line."""
        lines = (self.state / f"{run}.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def argv(self, *args: str) -> list[str]:
        """The demo CLI's command line (as a process) with this fleet's config."""
        return [
            sys.executable,
            "-m",
            "tests.workflows.playbook.demo_cli",
            "--config",
            str(self.config),
            *args,
        ]

    def run(self, *args: str) -> CliResult:
        """Run the demo CLI to its end, stdin not a terminal."""
        done = subprocess.run(
            self.argv(*args),
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            env=env(),
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start the demo CLI and return at once."""
        return subprocess.Popen(
            self.argv(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env(),
        )


def env() -> dict[str, str]:
    """The environment of a CLI process: this checkout importable (tests/ too)."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture
def fleet(tmp_path: Path, redis_server: RedisServer) -> Iterator[DemoFleet]:
    """Two proxies, each with its own real Redis; runs keep their state under tmp_path/runs."""
    second = start_redis(tmp_path / "redis-2")
    servers = [redis_server, RedisServer(second, tmp_path / "redis-2")]
    work = tmp_path / "work"
    work.mkdir()
    config = tmp_path / "fleet.yaml"
    proxies = "".join(
        f"  - {{name: proxy-0{i}, address: 127.0.0.1, redis: '{server.url}'}}\n"
        for i, server in enumerate(servers, start=1)
    )
    config.write_text(
        f"proxies:\n{proxies}"
        f"operations: {{state_dir: '{tmp_path / 'runs'}', lock_ttl: 60,"
        f" log: {{file: '{tmp_path / 'sal.log'}'}}}}\n"
    )
    try:
        yield DemoFleet(config, tmp_path / "runs", work, servers)
    finally:
        second.stop()
