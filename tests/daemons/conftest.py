"""Fixtures for the registration path: a Redis with proxylisteners against it, and a test identd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer
from tests.daemons.regstack import Identd, Stack


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
