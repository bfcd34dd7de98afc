"""`routes set` and `routes import` never store a backend that points back at the proxies (issue 10 A.5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import CliResult, RedisServer, run_cli

PROXY = "172.16.0.10"


def fleet_file(directory: Path, redis_server: RedisServer, **dataplane: object) -> str:
    """A fleet whose one proxy is at PROXY and writes to the test's Redis (on loopback)."""
    doc = {"proxies": [{"name": "p1", "address": PROXY, "redis": redis_server.url}], "dataplane": dataplane}
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def assert_refused_and_nothing_stored(result: CliResult, redis_server: RedisServer, said: str) -> None:
    assert result.code == 2, result
    assert said in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert redis_server.client().keys("*") == []  # no route, no version bump, no audit entry


@pytest.mark.parametrize(
    ("backend", "said"),
    [
        ("http://169.254.169.254:80", "link-local"),  # the cloud metadata service
        ("http://[fe80::1]:8000", "link-local"),
        ("http://[::ffff:169.254.169.254]:80", "link-local"),
        ("http://0.0.0.0:8000", "unspecified"),
        ("http://0.1.2.3:8000", "unspecified"),
        ("http://[::]:8000", "unspecified"),
        ("http://224.0.0.1:8000", "multicast"),
        ("http://[ff02::1]:8000", "multicast"),
        ("http://255.255.255.255:8000", "broadcast"),
        ("http://127.0.0.1:8000", "loopback"),
        ("http://[::1]:8000", "loopback"),
        (f"http://{PROXY}:8000", "a proxy's own address"),
        (f"https://{PROXY}:443", "a proxy's service"),
    ],
)
def test_a_refused_destination_exits_2_and_stores_nothing(
    redis_server: RedisServer, tmp_path: Path, backend: str, said: str
) -> None:
    config = fleet_file(tmp_path, redis_server)
    result = run_cli("--config", config, "routes", "set", "dplbot", backend)
    assert_refused_and_nothing_stored(result, redis_server, said)


def test_without_a_fleet_config_loopback_is_refused(redis_server: RedisServer) -> None:
    result = run_cli("--redis", redis_server.url, "routes", "set", "dplbot", "http://127.0.0.1:8000")
    assert_refused_and_nothing_stored(result, redis_server, "loopback")


def test_a_dry_run_is_refused_alike(redis_server: RedisServer, tmp_path: Path) -> None:
    config = fleet_file(tmp_path, redis_server)
    result = run_cli("--config", config, "routes", "set", "x", "http://169.254.169.254:80", "--dry-run")
    assert_refused_and_nothing_stored(result, redis_server, "link-local")


def test_where_tools_run_on_the_proxy_loopback_is_allowed_but_not_its_services(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    config = fleet_file(tmp_path, redis_server, allow_loopback_backends=True, https_port=8443)
    redis_port = redis_server.process.port
    # Redis, nginx, proxylistener, and webservicemonitor's metrics (its default port, 9618).
    services = ("https://127.0.0.1:8443", "http://127.0.0.1:8282", "http://127.0.0.1:9618")
    for backend in (f"http://127.0.0.1:{redis_port}", *services):
        result = run_cli("--config", config, "routes", "set", "dplbot", backend)
        assert_refused_and_nothing_stored(result, redis_server, "a proxy's service")
    allowed = run_cli("--config", config, "routes", "set", "dplbot", "http://127.0.0.1:8000")
    assert allowed.code == 0, allowed.stderr
    assert redis_server.client().hgetall("prefix:dplbot") == {".*": "http://127.0.0.1:8000"}


def test_an_import_with_one_refused_destination_writes_nothing(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    config = fleet_file(tmp_path, redis_server)
    export = tmp_path / "routes.json"
    routes = {"a": {".*": "http://10.0.0.5:8000"}, "b": {".*": f"http://{PROXY}:6379"}}
    export.write_text(json.dumps({"format": "toolforgectl-routes/1", "routes": routes}), encoding="utf-8")
    result = run_cli("--config", config, "routes", "import", str(export))
    assert_refused_and_nothing_stored(result, redis_server, "a proxy's")


def test_a_host_name_backend_is_stored_in_lower_case(redis_server: RedisServer, tmp_path: Path) -> None:
    config = fleet_file(tmp_path, redis_server)
    name = "Tools-Webgrid-Lighttpd-1205.tools.eqiad.wmflabs"
    result = run_cli("--config", config, "routes", "set", "dplbot", f"http://{name}:33555")
    assert result.code == 0, result.stderr
    stored = redis_server.client().hgetall("prefix:dplbot")
    assert stored == {".*": f"http://{name.lower()}:33555"}
