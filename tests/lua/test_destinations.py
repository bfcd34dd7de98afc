"""Routes that other writers (redis-cli, the original daemons) stored pointing back at the proxy are
never proxied: the data plane applies the destination rule itself (issue 10 A.5)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.conftest import wait_until
from tests.lua.proxyclient import Proxy, error_log, lab_redis
from tests.lua.test_urlproxy import sample_tool
from toolforgectl.lab import fleet


@contextmanager
def running_lab(
    directory: Path, dataplane: dict[str, object] | None = None, tools: tuple[str, ...] = fleet.SAMPLE_TOOLS
) -> Iterator[Proxy]:
    state = fleet.up(directory, tools=tools, dataplane=dataplane)
    try:
        yield Proxy(state)
    finally:
        fleet.down(directory)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """A lab (Redis, nginx, hello and echo) whose tools run on loopback, as every lab's do."""
    with running_lab(tmp_path_factory.mktemp("lab")) as proxy:
        yield proxy


def write_like_redis_cli(proxy: Proxy, tool: str, backend: str) -> None:
    """HSET as the original runbook does: no validation, no version bump."""
    redis.Redis.from_url(proxy.info["redis"]).hset(f"prefix:{tool}", ".*", backend)


def test_a_route_to_the_proxys_own_services_is_not_proxied(lab: Proxy) -> None:
    redis_port = lab_redis(lab).port
    targets = {
        "to-redis": f"http://127.0.0.1:{redis_port}",
        "to-itself": f"https://127.0.0.1:{lab.port('https')}",  # the request loop
        "to-internal": f"http://127.0.0.1:{lab.port('internal')}",
        "to-metadata": "http://169.254.169.254:80",
        "to-broadcast": "http://255.255.255.255:8000",
        "to-nowhere": "http://0.0.0.0:8000",
    }
    for tool, backend in targets.items():
        write_like_redis_cli(lab, tool, backend)
    for tool in targets:
        reply = lab.get(f"/{tool}/x")
        assert reply.status == 503 and "Tool unavailable" in reply.body, tool
    assert "ignoring a stored route" in error_log(lab)
    # Had the request reached Redis, it would have logged an HTTP request as an attack.
    assert "SECURITY ATTACK" not in Path(lab_redis(lab).log).read_text()
    assert lab.backend_of("/hello/") == "hello"  # routes to the tools' own ports still work


def test_loopback_is_not_proxied_where_tools_do_not_run_on_the_proxy(tmp_path: Path) -> None:
    tool = sample_tool("local", tmp_path / "local.log")
    try:
        with running_lab(tmp_path / "lab", {"allow_loopback_backends": False}, tools=()) as proxy:
            write_like_redis_cli(proxy, "local", f"http://127.0.0.1:{tool.port}")
            reply = proxy.get("/local/")
            assert reply.status == 503, reply
            wait_until(lambda: "is a loopback address" in error_log(proxy), "the refusal in the error log")
    finally:
        tool.stop()
