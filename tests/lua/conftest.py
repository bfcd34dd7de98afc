"""The lab proxies the data plane's end-to-end tests run against."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.lua.proxyclient import Proxy
from toolforgectl.lab import fleet


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """One lab (Redis, nginx, sample tools `hello` and `echo`) shared by the read-mostly tests."""
    directory = tmp_path_factory.mktemp("lab")
    state = fleet.up(directory)
    try:
        yield Proxy(state)
    finally:
        fleet.down(directory)


@pytest.fixture
def own_lab(tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    """A lab with the given data plane settings, for tests that change or break things."""
    started: list[Path] = []

    def start(**dataplane: object) -> Proxy:
        directory = tmp_path / f"lab{len(started)}"
        started.append(directory)
        return Proxy(fleet.up(directory, dataplane=dataplane))

    yield start
    for directory in started:
        fleet.down(directory)
