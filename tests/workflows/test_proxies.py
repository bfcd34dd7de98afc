"""`proxy list`'s survey against real Redis servers (a primary and its replica): every kind of
disagreement an operator must see before a failover, named in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import RedisServer
from toolforgectl.adapters.processes import free_port
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import config
from toolforgectl.core.config.hiera import ACTIVE_PROXY_KEY
from toolforgectl.workflows import proxies


def fleet(tmp: Path, one: str, two: str, files: dict[str, str | None], hiera: str | None = "proxy-01") -> Any:
    """proxy-01 with Redis `one`, proxy-02 with `two`; each active-proxy file with its content
    (None: no file); a file-backed `hiera:` section naming `hiera` (None: no section)."""
    entries = []
    for name, url in (("proxy-01", one), ("proxy-02", two)):
        path = tmp / f"{name}.active-proxy"
        if files[name] is not None:
            path.write_text(str(files[name]))
        number = name[-1]
        entries.append(
            {"name": name, "address": f"127.0.0.{number}", "redis": url, "active_proxy_file": str(path)}
        )
    doc: dict[str, Any] = {"proxies": entries, "active_proxy": "proxy-01"}
    if hiera is not None:
        (tmp / "hiera.yaml").write_text(f"{ACTIVE_PROXY_KEY}: {hiera}\n")
        doc["hiera"] = {"backend": "file", "path": str(tmp / "hiera.yaml")}
    (tmp / "fleet.yaml").write_text(yaml.safe_dump(doc))
    return config.load(tmp / "fleet.yaml")


def test_a_hiera_naming_the_standby_is_a_disagreement(
    tmp_path: Path, redis_server: RedisServer, redis_replica: RedisServer
) -> None:
    files: dict[str, str | None] = {"proxy-01": "proxy-01", "proxy-02": "proxy-01"}
    found = proxies.survey(fleet(tmp_path, redis_server.url, redis_replica.url, files, hiera="127.0.0.2"))
    assert found.hiera.names == "proxy-02", "hiera may name the host by address: it is still proxy-02"
    assert found.disagreements == [
        f"hiera ({tmp_path}/hiera.yaml) names proxy-02, not the active proxy proxy-01"
    ]


def test_a_healthy_pair_agrees(tmp_path: Path, redis_server: RedisServer, redis_replica: RedisServer) -> None:
    found = proxies.survey(
        fleet(tmp_path, redis_server.url, redis_replica.url, {"proxy-01": "proxy-01", "proxy-02": "proxy-01"})
    )
    assert found.agree, found.disagreements
    assert [(p.role, p.redis_role, p.link, p.agrees) for p in found.proxies] == [
        ("active", "primary", None, True),
        ("standby", "replica", "up", True),
    ]


def test_files_that_disagree_fall_back_to_the_fleet_config_and_are_named(
    tmp_path: Path, redis_server: RedisServer, redis_replica: RedisServer
) -> None:
    files: dict[str, str | None] = {"proxy-01": "proxy-01", "proxy-02": "proxy-02.eqiad.example"}
    found = proxies.survey(fleet(tmp_path, redis_server.url, redis_replica.url, files))
    assert found.active == "proxy-01"
    assert found.disagreements == [
        f"active-proxy file proxy-02:{tmp_path}/proxy-02.active-proxy names proxy-02, not proxy-01"
    ]
    assert [p.agrees for p in found.proxies] == [True, False]


def test_two_primaries_are_a_split_brain(
    tmp_path: Path, redis_server: RedisServer, redis_replica: RedisServer
) -> None:
    RouteStore.from_url(redis_replica.url).promote()
    files: dict[str, str | None] = {"proxy-01": "proxy-01", "proxy-02": "proxy-01"}
    found = proxies.survey(fleet(tmp_path, redis_server.url, redis_replica.url, files))
    assert found.disagreements == ["proxy-02's Redis is a primary, but proxy-02 is a standby (two primaries)"]


def test_a_promoted_standby_whose_files_were_not_flipped_is_named(
    tmp_path: Path, redis_server: RedisServer, redis_replica: RedisServer
) -> None:
    # A failover half done: proxy-02's Redis took over, proxy-01's follows it, nothing else moved.
    RouteStore.from_url(redis_replica.url).promote()
    RouteStore.from_url(redis_server.url).replicate_from(
        redis_replica.process.host, redis_replica.process.port
    )
    files: dict[str, str | None] = {"proxy-01": "proxy-01", "proxy-02": "proxy-01"}
    found = proxies.survey(fleet(tmp_path, redis_server.url, redis_replica.url, files))
    assert "proxy-01's Redis is a replica, but proxy-01 is the active proxy" in found.disagreements
    assert "proxy-02's Redis is a primary, but proxy-02 is a standby (two primaries)" in found.disagreements


def test_the_kill_switch_a_missing_file_an_unreachable_redis_and_no_hiera(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    found = proxies.survey(
        fleet(tmp_path, redis_server.url, nowhere, {"proxy-01": "", "proxy-02": None}, hiera=None)
    )
    one, two = found.proxies
    assert one.active_proxy_file.problem == "empty: the kill switch, registration is off"
    assert two.active_proxy_file.names == "proxy-01", "no file: its daemons follow the fleet config"
    assert "missing" in two.active_proxy_file.where
    assert two.redis_role == "unreachable" and two.redis_problem
    assert (
        found.hiera.names is None
        and found.hiera.problem == "no hiera: section in the fleet config (not compared)"
    )
    assert not found.agree and len(found.disagreements) == 2  # the kill switch, and proxy-02's Redis
