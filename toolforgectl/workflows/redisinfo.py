"""What `debug redis` and `debug history` want to know about the route store's Redis server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core.errors import NotFoundError

_REPLICATION = (
    "role",
    "master_host",
    "master_port",
    "master_link_status",
    "master_last_io_seconds_ago",
    "master_sync_in_progress",
    "connected_slaves",
    "master_repl_offset",
    "slave_repl_offset",
)
_PERSISTENCE = (
    "aof_enabled",
    "aof_rewrite_in_progress",
    "aof_last_bgrewrite_status",
    "aof_last_write_status",
    "rdb_last_bgsave_status",
    "rdb_changes_since_last_save",
)


def status(store: RouteStore) -> dict[str, dict[str, Any]]:
    """Replication, persistence and key counts, grouped for printing."""
    info = store.server_info()
    replicas = {k: v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)}
    return {
        "server": {"url": store.url, "version": info.get("redis_version"), "routes_version": store.version()},
        "replication": {k: info[k] for k in _REPLICATION if k in info} | {"replicas": replicas},
        "persistence": {k: info[k] for k in _PERSISTENCE if k in info},
        "keys": store.key_counts(),
    }


def aof_location(store: RouteStore) -> tuple[Path, str]:
    """Where the running Redis keeps its AOF: the appendonlydir (Redis 7) or the single file."""
    conf = store.server_config("dir", "appendfilename", "appenddirname", "appendonly")
    if conf.get("appendonly") != "yes":
        raise NotFoundError(f"Redis at {store.url} has appendonly off: there is no AOF to read")
    base = Path(conf["dir"])
    filename = conf.get("appendfilename", "appendonly.aof")
    dirname = conf.get("appenddirname")
    path = base / dirname if dirname else base / filename
    if not path.exists():
        raise NotFoundError(f"{path}: not readable here (run on the proxy itself, or pass --aof)")
    return path, filename
