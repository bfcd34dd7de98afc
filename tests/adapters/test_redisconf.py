"""The proxy's redis.conf (templates/redis/redis.conf.j2): what render writes, and Redis running it."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.conftest import RedisServer, run_cli
from toolforgectl.adapters.processes import start_redis
from toolforgectl.core.config import DataPlane


def rendered(tmp_path: Path, proxies: str, proxy: str = "", extra: str = "") -> str:
    """conf/redis.conf as `toolforgectl render --out` writes it for `proxy` (default: the active one)."""
    config = tmp_path / "fleet.yaml"
    config.write_text(f"proxies:\n{proxies}{extra}")
    out = tmp_path / "out"
    chosen = ("--proxy", proxy) if proxy else ()
    done = run_cli("--config", str(config), *chosen, "render", "--out", str(out))
    assert done.code == 0, done.stderr
    return (out / "conf" / "redis.conf").read_text()


TWO_PROXIES = (
    "  - {name: proxy-01, address: 127.0.0.1, redis: 'redis://127.0.0.1:6390/0'}\n"
    "  - {name: proxy-02, address: 127.0.0.2, redis: 'redis://127.0.0.2:6391/0'}\n"
)


def directives(conf: str) -> dict[str, str]:
    """Each directive of a redis.conf and its arguments (comments and blank lines left out)."""
    lines = (line.split(None, 1) for line in conf.splitlines() if line.strip() and not line.startswith("#"))
    return {parts[0]: parts[1] if len(parts) > 1 else "" for parts in lines}


def test_render_writes_the_active_proxys_redis_conf(tmp_path: Path) -> None:
    conf = directives(rendered(tmp_path, TWO_PROXIES))
    assert (conf["bind"], conf["port"], conf["protected-mode"]) == ("127.0.0.1", "6390", "yes")
    assert (conf["maxmemory"], conf["maxmemory-policy"]) == ("512mb", "noeviction")
    assert (conf["appendonly"], conf["appendfsync"], conf["aof-timestamp-enabled"]) == (
        "yes",
        "everysec",
        "yes",
    )
    assert conf["dir"] == f'"{tmp_path / "out" / "redis"}"'
    assert "replicaof" not in conf


def test_a_standby_proxys_redis_copies_the_active_one(tmp_path: Path) -> None:
    conf = directives(rendered(tmp_path, TWO_PROXIES, proxy="proxy-02"))
    assert (conf["bind"], conf["port"]) == ("127.0.0.2", "6391")
    assert conf["replicaof"] == "127.0.0.1 6390"


def test_the_memory_limit_is_a_setting(tmp_path: Path) -> None:
    conf = directives(rendered(tmp_path, TWO_PROXIES, extra="dataplane: {redis_maxmemory: 2gb}\n"))
    assert conf["maxmemory"] == "2gb"


def test_on_a_proxy_address_protected_mode_is_off_and_the_file_says_why(tmp_path: Path) -> None:
    # Without a password, Redis 7's protected mode refuses every peer but loopback, nginx included.
    text = rendered(tmp_path, "  - {name: proxy-01, address: 172.16.0.10}\n")
    assert directives(text)["bind"] == "172.16.0.10"
    assert directives(text)["protected-mode"] == "no"
    assert "firewall must let only the proxies reach this port" in text


def test_redis_runs_with_what_the_file_says(redis_server: RedisServer) -> None:
    # The test fixtures' Redis (and the lab's) is started from the rendered file.
    client = redis_server.client()
    names = ("appendonly", "appendfsync", "maxmemory-policy", "maxmemory")
    assert {name: client.config_get(name)[name] for name in names} == {
        "appendonly": "yes",
        "appendfsync": "everysec",
        "maxmemory-policy": "noeviction",
        "maxmemory": str(512 * 1024 * 1024),
    }


def test_at_its_memory_limit_redis_refuses_new_routes_and_drops_none(tmp_path: Path) -> None:
    process = start_redis(tmp_path / "redis", plane=DataPlane(redis_maxmemory="3mb"))
    try:
        client = redis.Redis(host="127.0.0.1", port=process.port)
        written = 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            while written < 100_000:
                client.hset(f"prefix:tool{written}", ".*" + "x" * 200, "http://10.0.0.1:8000")
                written += 1
        assert client.dbsize() == written  # every route written before the limit is still there
        assert client.hget("prefix:tool0", ".*" + "x" * 200) == b"http://10.0.0.1:8000"
    finally:
        process.stop()
