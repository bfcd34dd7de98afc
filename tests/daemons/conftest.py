"""Fixtures for the daemons' tests: the registration path (a Redis with proxylisteners against it,
and a test identd), and for the slow tier a real kube-apiserver with its etcd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer
from tests.daemons.regstack import Identd, Stack
from tests.support.kube_cluster import Cluster


@pytest.fixture
def stack(redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    """The test's real redis-server; call `.listener(...)` for proxylisteners against it."""
    found = Stack(redis_server, tmp_path)
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
def identd() -> Iterator[Identd]:
    """A running test identd; set `.user` to what it should claim."""
    server = Identd()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real kube-apiserver and its etcd for one test module (the slow tier: `make slow`)."""
    running = Cluster(tmp_path_factory.mktemp("k8s")).start()
    try:
        yield running
    finally:
        running.stop()
