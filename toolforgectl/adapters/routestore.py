"""The route store: the one module that owns the Redis key schema of the dynamic proxy.

Keys shared with the original system (their meaning never changes):
    prefix:<tool>    hash  route regex -> backend URL (`http://10.0.0.5:41234`)
    prefix:admin     hash  the fallback tool
    redirect:<tool>  hash  route -> canonical host name (registerCanonical)
    k8s_services     set   `<namespace>/<service>/<route>` owned by kube2proxy
Keys toolforgectl adds, each under its own name:
    toolforgectl:routes:version   counter bumped by every write, so caches invalidate at once
    toolforgectl:routes:changes   pub/sub channel; every write publishes the tool's name
    toolforgectl:audit:<tool>     stream of accepted changes (capped), for `debug history`
    toolforgectl:token:<tool>     generation of the tool's proxylistener token (see tokens.py)
The Lua side mirrors these names once, in lua/schema.lua; tests/fixtures/schema.json pins both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from toolforgectl.core import validate
from toolforgectl.core.errors import ReadOnlyReplicaError, RouteStoreError, ValidationError
from toolforgectl.core.models import AuditEntry, RouteChange

PREFIX = "prefix:"
REDIRECT = "redirect:"
K8S_SERVICES = "k8s_services"
ADMIN_TOOL = "admin"
VERSION_KEY = "toolforgectl:routes:version"
CHANGES_CHANNEL = "toolforgectl:routes:changes"
AUDIT_PREFIX = "toolforgectl:audit:"
AUDIT_MAXLEN = 1000
TOKEN_PREFIX = "toolforgectl:token:"
DEFAULT_TIMEOUT = 2.0
# Keys per SCAN step and commands per pipeline: bounded work per Redis round trip at 10k+ tools.
_BATCH = 1000

# proxylistener's hot path: the token-generation check and the whole write in one atomic round
# trip, so a rotated token cannot slip a write in between the check and the HSET.
_SET_IF_GENERATION = """
local current = tonumber(redis.call('GET', KEYS[4]) or '0')
if current ~= tonumber(ARGV[3]) then return {0, ''} end
local old = redis.call('HGET', KEYS[1], ARGV[1]) or ''
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'time', ARGV[4], 'tool', ARGV[5],
           'action', 'set', 'route', ARGV[1], 'backend', ARGV[2], 'actor', ARGV[6])
redis.call('PUBLISH', ARGV[8], ARGV[5])
return {1, old}
"""


def prefix_key(tool: str) -> str:
    """The Redis key holding `tool`'s routes."""
    return PREFIX + tool


def redirect_key(tool: str) -> str:
    """The Redis key holding `tool`'s canonical-host redirects."""
    return REDIRECT + tool


def audit_key(tool: str) -> str:
    """The Redis key of `tool`'s audit stream."""
    return AUDIT_PREFIX + tool


def redacted(url: str) -> str:
    """`url` with any password replaced, so it can appear in logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


class RouteStore:
    """Reads and writes routes in one Redis, validating everything on the way in."""

    def __init__(self, client: redis.Redis, url: str = "redis") -> None:
        # redis-py types every reply as `bytes | str | None` whatever decode_responses says; the
        # client is always built with decode_responses=True, so replies are str, typed as Any here.
        self._redis: Any = client
        self._client = client
        self._set_if_generation: Any = client.register_script(_SET_IF_GENERATION)
        self.url = redacted(url)

    @classmethod
    def from_url(cls, url: str, timeout: float = DEFAULT_TIMEOUT) -> RouteStore:
        """Connect (lazily) to the Redis at `url`, e.g. `redis://127.0.0.1:6379/0`."""
        try:
            client = redis.Redis.from_url(
                url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as exc:
            raise ValidationError(f"Redis URL {redacted(url)!r} is not usable: {exc}") from None
        return cls(client, url)

    @property
    def client(self) -> redis.Redis:
        """The underlying client, for the few callers that inspect the server itself."""
        return self._client

    @contextmanager
    def _talking(self) -> Iterator[None]:
        """Translate redis-py errors into RouteStoreError at this boundary."""
        try:
            yield
        except redis.ReadOnlyError:
            raise ReadOnlyReplicaError(
                f"Redis at {self.url} is a read-only replica; write to the active proxy"
            ) from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RouteStoreError(f"cannot reach Redis at {self.url}: {exc}") from None
        except redis.RedisError as exc:
            raise RouteStoreError(f"Redis at {self.url} answered an error: {exc}") from None

    # Reads ---------------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise RouteStoreError unless Redis answers."""
        with self._talking():
            self._redis.ping()

    def tools(self) -> list[str]:
        """Every tool with a `prefix:` key, sorted; uses SCAN so Redis is never blocked."""
        with self._talking():
            keys = self._redis.scan_iter(match=PREFIX + "*", count=_BATCH, _type="hash")
            return sorted({key[len(PREFIX) :] for key in keys})

    def routes(self, tool: str) -> dict[str, str]:
        """`tool`'s routes (regex -> backend); empty if it has none."""
        validate.tool_name(tool)
        with self._talking():
            return dict(self._redis.hgetall(prefix_key(tool)))

    def redirects(self, tool: str) -> dict[str, str]:
        """`tool`'s canonical-host redirects (route -> host)."""
        validate.tool_name(tool)
        with self._talking():
            return dict(self._redis.hgetall(redirect_key(tool)))

    def all_routes(self) -> dict[str, dict[str, str]]:
        """Every tool's routes, fetched in pipelined batches."""
        tools = self.tools()
        result: dict[str, dict[str, str]] = {}
        with self._talking():
            for start in range(0, len(tools), _BATCH):
                batch = tools[start : start + _BATCH]
                pipe = self._redis.pipeline(transaction=False)
                for tool in batch:
                    pipe.hgetall(PREFIX + tool)
                for tool, routes in zip(batch, pipe.execute(), strict=True):
                    if routes:
                        result[tool] = dict(routes)
        return result

    def version(self) -> int:
        """The write counter that caches compare against."""
        with self._talking():
            return int(self._redis.get(VERSION_KEY) or 0)

    def k8s_members(self) -> set[str]:
        """The `k8s_services` registry: `<namespace>/<service>/<route>` owned by kube2proxy."""
        with self._talking():
            return set(self._redis.smembers(K8S_SERVICES))

    def server_info(self) -> dict[str, Any]:
        """Redis INFO: replication, persistence and keyspace sections merged."""
        with self._talking():
            info: dict[str, Any] = {}
            for section in ("server", "replication", "persistence", "keyspace"):
                info.update(self._redis.info(section))
            return info

    def server_config(self, *names: str) -> dict[str, str]:
        """Redis CONFIG GET for each of `names`."""
        with self._talking():
            found: dict[str, str] = {}
            for name in names:
                found.update(self._redis.config_get(name))
            return found

    def key_counts(self) -> dict[str, int]:
        """How many keys of each schema family there are (SCAN, never KEYS)."""
        with self._talking():
            counts = {
                family: sum(1 for _ in self._redis.scan_iter(match=pattern, count=_BATCH))
                for family, pattern in (("prefix", PREFIX + "*"), ("redirect", REDIRECT + "*"))
            }
            counts["k8s_services"] = int(self._redis.scard(K8S_SERVICES))
            return counts

    def audit(self, tool: str, limit: int = AUDIT_MAXLEN) -> list[AuditEntry]:
        """`tool`'s recorded changes, oldest first."""
        validate.tool_name(tool)
        with self._talking():
            raw = self._redis.xrevrange(audit_key(tool), count=limit)
        return [_audit_entry(entry_id, fields) for entry_id, fields in reversed(raw)]

    def token_generation(self, tool: str) -> int:
        """The current generation of `tool`'s registration token (0 until first rotated)."""
        validate.tool_name(tool)
        with self._talking():
            return int(self._redis.get(TOKEN_PREFIX + tool) or 0)

    # Writes --------------------------------------------------------------------------------

    def set_route(
        self, tool: str, route: str, backend: str, *, actor: str, dry_run: bool = False
    ) -> RouteChange:
        """Point `tool`'s `route` at `backend`; returns what changed."""
        tool, route = validate.tool_name(tool), validate.route(route)
        backend = validate.backend(backend)
        with self._talking():
            old = self._redis.hget(prefix_key(tool), route)
            change = RouteChange(tool, route, "set", old, backend, dry_run)
            if not dry_run:
                self._commit(change, actor, lambda p: p.hset(prefix_key(tool), route, backend))
        return change

    def delete_route(
        self,
        tool: str,
        route: str,
        *,
        actor: str,
        only_if_backend: str | None = None,
        token_generation: int | None = None,
        dry_run: bool = False,
    ) -> RouteChange:
        """Remove `tool`'s `route` (and its redirect).

        With `only_if_backend`, remove it only while it still points there: a late unregister
        from an old job must not drop a newer job's registration. With `token_generation`, only
        while the tool's token is still of that generation (checked in the same transaction).
        """
        tool, route = validate.tool_name(tool), validate.route(route)
        with self._talking():
            return self._delete_watched(tool, route, actor, only_if_backend, token_generation, dry_run)

    def _delete_watched(
        self,
        tool: str,
        route: str,
        actor: str,
        only_if_backend: str | None,
        token_generation: int | None,
        dry_run: bool,
    ) -> RouteChange:
        key, token_key = prefix_key(tool), TOKEN_PREFIX + tool
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, token_key)
                    if token_generation is not None and int(pipe.get(token_key) or 0) != token_generation:
                        pipe.unwatch()
                        raise ValidationError("token was rotated; fetch the current one")
                    old = pipe.hget(key, route)
                    keep = only_if_backend is not None and old != only_if_backend
                    if old is None or keep or dry_run:
                        pipe.unwatch()
                        return RouteChange(tool, route, "delete", old, old if keep else None, dry_run)
                    change = RouteChange(tool, route, "delete", old, None)
                    pipe.multi()
                    pipe.hdel(key, route)
                    pipe.hdel(redirect_key(tool), route)
                    self._record(pipe, change, actor)
                    pipe.execute()
                    self._redis.publish(CHANGES_CHANNEL, tool)
                    return change
                except redis.WatchError:
                    continue

    def delete_tool(self, tool: str, *, actor: str, dry_run: bool = False) -> list[RouteChange]:
        """Remove every route (and redirect) of `tool`."""
        return [self.delete_route(tool, route, actor=actor, dry_run=dry_run) for route in self.routes(tool)]

    def set_redirect(self, tool: str, route: str, host: str, *, actor: str) -> None:
        """Record `registerCanonical`: `tool`'s `route` has canonical host `host`."""
        tool, route = validate.tool_name(tool), validate.route(route)
        with self._talking():
            self._redis.hset(redirect_key(tool), route, host)

    def set_route_if_token(
        self, tool: str, route: str, backend: str, *, generation: int, actor: str
    ) -> RouteChange:
        """`set_route`, but only while `tool`'s token generation is still `generation`."""
        tool, route = validate.tool_name(tool), validate.route(route)
        backend = validate.backend(backend)
        keys = [prefix_key(tool), VERSION_KEY, audit_key(tool), TOKEN_PREFIX + tool]
        args = [route, backend, generation, f"{time.time():.3f}", tool, actor, AUDIT_MAXLEN, CHANGES_CHANNEL]
        with self._talking():
            done, old = self._set_if_generation(keys=keys, args=args)
        if not done:
            raise ValidationError("token was rotated; fetch the current one")
        return RouteChange(tool, route, "set", old or None, backend)

    def rotate_token(self, tool: str) -> int:
        """Invalidate `tool`'s current token by bumping its generation; returns the new one."""
        validate.tool_name(tool)
        with self._talking():
            return int(self._redis.incr(TOKEN_PREFIX + tool))

    def set_k8s_route(self, member: str, tool: str, route: str, backend: str) -> RouteChange:
        """Write a kube2proxy-owned route and record ownership in `k8s_services`, atomically."""
        return self.set_k8s_routes([(member, tool, route, backend)])[0]

    def delete_k8s_route(self, member: str, tool: str, route: str) -> RouteChange:
        """Remove a kube2proxy-owned route and its `k8s_services` member, atomically."""
        tool, route = validate.tool_name(tool), validate.route(route)
        with self._talking():
            old = self._redis.hget(prefix_key(tool), route)
            change = RouteChange(tool, route, "delete", old, None)

            def write(pipe: Any) -> None:
                pipe.hdel(prefix_key(tool), route)
                pipe.srem(K8S_SERVICES, member)

            self._commit(change, "kube2proxy", write)
        return change

    def set_k8s_routes(self, routes: Sequence[tuple[str, str, str, str]]) -> list[RouteChange]:
        """Write kube2proxy-owned routes, as (member, tool, route, backend), in batched transactions.

        A route already in place and owned is not written again. For
        kube2proxy's relists and event bursts: 3 round trips per thousand routes, not 4 each.
        """
        checked = [
            (member, validate.tool_name(tool), validate.route(route), validate.backend(backend))
            for member, tool, route, backend in routes
        ]
        changes: list[RouteChange] = []
        with self._talking():
            for start in range(0, len(checked), _BATCH):
                changes += self._set_k8s_batch(checked[start : start + _BATCH])
        return changes

    def _set_k8s_batch(self, batch: list[tuple[str, str, str, str]]) -> list[RouteChange]:
        reads = self._redis.pipeline(transaction=False)
        for member, tool, route, _ in batch:
            reads.hget(prefix_key(tool), route)
            reads.sismember(K8S_SERVICES, member)
        found = reads.execute()
        olds, owned = found[0::2], found[1::2]
        changes = [RouteChange(t, r, "set", old, b) for (_, t, r, b), old in zip(batch, olds, strict=True)]
        todo = [(w, c) for w, c, o in zip(batch, changes, owned, strict=True) if c.changed or not o]
        if not todo:
            return changes
        pipe = self._redis.pipeline(transaction=True)
        for (member, tool, route, backend), change in todo:
            pipe.hset(prefix_key(tool), route, backend)
            pipe.sadd(K8S_SERVICES, member)
            self._record(pipe, change, "kube2proxy")
        pipe.execute()
        notify = self._redis.pipeline(transaction=False)
        for tool in dict.fromkeys(change.tool for _, change in todo):
            notify.publish(CHANGES_CHANNEL, tool)
        notify.execute()
        return changes

    def forget_k8s_member(self, member: str) -> None:
        """Drop a `k8s_services` member that names no route we may delete (routes untouched)."""
        with self._talking():
            self._redis.srem(K8S_SERVICES, member)

    def import_routes(
        self, data: Mapping[str, Mapping[str, str]], *, actor: str, dry_run: bool = False
    ) -> list[RouteChange]:
        """Write every route in `data` (tool -> route -> backend); all are validated first."""
        checked = [
            (validate.tool_name(tool), validate.route(route), validate.backend(backend))
            for tool, routes in data.items()
            for route, backend in routes.items()
        ]
        return [
            self.set_route(tool, route, backend, actor=actor, dry_run=dry_run)
            for tool, route, backend in checked
        ]

    def _commit(self, change: RouteChange, actor: str, write: Any) -> None:
        """Apply `write` with the version bump and audit record in one transaction, then notify."""
        pipe = self._redis.pipeline(transaction=True)
        write(pipe)
        self._record(pipe, change, actor)
        pipe.execute()
        self._redis.publish(CHANGES_CHANNEL, change.tool)

    @staticmethod
    def _record(pipe: Any, change: RouteChange, actor: str) -> None:
        pipe.incr(VERSION_KEY)
        fields = {
            "time": f"{time.time():.3f}",
            "tool": change.tool,
            "action": change.action,
            "route": change.route,
            "backend": (change.new if change.action == "set" else change.old) or "",
            "actor": actor,
        }
        pipe.xadd(audit_key(change.tool), fields, maxlen=AUDIT_MAXLEN, approximate=True)


def _audit_entry(entry_id: str, fields: Mapping[str, str]) -> AuditEntry:
    return AuditEntry(
        id=entry_id,
        time=float(fields.get("time", "0")),
        tool=fields.get("tool", ""),
        action=fields.get("action", ""),
        route=fields.get("route", ""),
        backend=fields.get("backend", ""),
        actor=fields.get("actor", ""),
    )
