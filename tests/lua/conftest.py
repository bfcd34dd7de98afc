"""The lab proxies the data plane's end-to-end tests run against."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.lua.proxyclient import Proxy, redis_answering
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
    proxies: dict[Path, Proxy] = {}

    def start(**dataplane: object) -> Proxy:
        directory = tmp_path / f"lab{len(started)}"
        started.append(directory)  # before up: a lab that failed half-way is still taken down
        proxies[directory] = Proxy(fleet.up(directory, dataplane=dataplane))
        return proxies[directory]

    yield start
    for directory in started:
        if directory not in proxies:
            fleet.down(directory)
            continue
        with redis_answering(proxies[directory]):  # if the test stopped it
            fleet.down(directory)
