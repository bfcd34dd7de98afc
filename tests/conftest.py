"""Shared fixtures: real servers on free loopback ports, and the CLI as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from hypothesis import settings

from toolforgectl.adapters.processes import LAB_PORTS_ENV, Process, lab_ports, start_redis
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core.destinations import Destinations
from toolforgectl.core.waiting import wait_until  # tests import it from here too

# The slow tier's one OpenStack control plane for the session (openstack_cloud and friends).
pytest_plugins = ["tests.support.openstack_session"]

REPO = Path(__file__).resolve().parent.parent  # the checkout: templates/, lua/, tests/fixtures/


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make fast` runs two workers) each worker's servers, and those of the
    labs and daemons it starts as child processes, pick their ports from a slice of the lab's range
    of their own: a port one worker picked is then never bound by the other before it starts."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...: set by xdist in its workers
    if worker is None:
        return
    index, count = int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    low, high = lab_ports()
    size = (high - low + 1) // count
    os.environ[LAB_PORTS_ENV] = f"{low + index * size}-{low + (index + 1) * size - 1}"


@dataclass
class RedisServer:
    """A running redis-server started for one test."""

    process: Process
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://{self.process.host}:{self.process.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.process.host, port=self.process.port, decode_responses=True)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server with AOF on, in a temp dir, on a free loopback port."""
    process = start_redis(tmp_path / "redis")
    try:
        yield RedisServer(process, tmp_path / "redis")
    finally:
        process.stop()


@pytest.fixture
def redis_replica(redis_server: RedisServer, tmp_path: Path) -> Iterator[RedisServer]:
    """A second real redis-server replicating from `redis_server` (rendered with `replicaof`, as a
    standby proxy's), returned once its link to the primary is up and the AOF rewrite that follows
    a full sync is over (a redis-server told to stop in the middle of it takes 10 s to go)."""
    primary = (redis_server.process.host, redis_server.process.port)
    process = start_redis(tmp_path / "replica", replica_of=primary)
    try:
        replica = RedisServer(process, tmp_path / "replica")
        wait_until(lambda: _synced(replica), f"the replica on port {process.port} to sync from {primary}")
        yield replica
    finally:
        process.stop()


def _synced(replica: RedisServer) -> bool:
    store = RouteStore.from_url(replica.url)
    return bool(store.replication().link_up) and not store.aof_rewriting()


# Test tools run on loopback, as the lab's do: the destination rule of a fleet that says so.
LOOPBACK_TOOLS = Destinations(allow_loopback=True)


@pytest.fixture
def store(redis_server: RedisServer) -> RouteStore:
    """The route store on this test's redis-server, for tools on loopback (LOOPBACK_TOOLS)."""
    return RouteStore.from_url(redis_server.url, destinations=LOOPBACK_TOOLS)


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for a whole module (for property tests that run many examples)."""
    directory = tmp_path_factory.mktemp("redis")
    process = start_redis(directory)
    try:
        yield RedisServer(process, directory)
    finally:
        process.stop()


# Examples that talk to real servers on 2 shared cores can exceed hypothesis' 200 ms deadline
# without anything being wrong; a slow example is not a failure here, a wrong one is.
settings.register_profile("real-servers", deadline=None)
settings.load_profile("real-servers")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> CliResult:
    """Run the real `toolforgectl` in a child process."""
    full_env = {**os.environ, "TOOLFORGECTL_CONFIG": "/nonexistent/toolforgectl.yaml", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "toolforgectl", *args],
        check=False,
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin,
        timeout=60,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)
