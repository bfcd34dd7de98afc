"""The route store: reads and writes routes, block lists and locks in one Redis (redis-py here only)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from toolforgectl.adapters.routestore.replication import Replication, parse_replication
from toolforgectl.adapters.routestore.schema import (
    AUDIT_MAXLEN,
    BLOCK_AUDIT_KEY,
    BLOCK_LIMITS,
    DEFAULT_TIMEOUT,
    K8S_SERVICES,
    LOCK_PREFIX,
    PREFIX,
    REDIRECT,
    TOKEN_PREFIX,
    VERSION_KEY,
    audit_key,
    block_key,
    prefix_key,
    redacted,
    redirect_key,
)
from toolforgectl.adapters.routestore.scripts import BLOCK_WRITE, HOLD, RELEASE, WRITE, Write, flat, now, who
from toolforgectl.core import validate
from toolforgectl.core.destinations import Destinations
from toolforgectl.core.errors import (
    ReadOnlyReplicaError,
    RouteLimitError,
    RouteStoreError,
    ValidationError,
)
from toolforgectl.core.models import (
    BLOCK_KINDS,
    Attribution,
    AuditEntry,
    Backend,
    Block,
    BlockAction,
    BlockChange,
    BlockKind,
    RouteChange,
)

# Keys per SCAN step and commands per pipeline: bounded work per Redis round trip at 10k+ tools.
_BATCH = 1000


class RouteStore:
    """Reads and writes routes in one Redis, validating everything on the way in.

    Every backend written must also be a place the fleet lets routes point (`destinations`: the
    fleet's rule; without one, the strict default that knows no proxy and refuses loopback). A tool
    gets at most `max_routes` routes (the fleet's `dataplane.max_routes_per_tool`): the write script
    refuses a new route past it, atomically, whoever writes.
    """

    def __init__(
        self,
        client: redis.Redis,
        url: str = "redis",
        destinations: Destinations | None = None,
        max_routes: int = validate.MAX_ROUTES_PER_TOOL,
    ) -> None:
        # redis-py types every reply as `bytes | str | None` whatever decode_responses says; the
        # client is always built with decode_responses=True, so replies are str, typed as Any here.
        self._redis: Any = client
        self._write: Any = client.register_script(WRITE)
        self._hold: Any = client.register_script(HOLD)
        self._release: Any = client.register_script(RELEASE)
        self._block: Any = client.register_script(BLOCK_WRITE)
        self.url = redacted(url)
        self.destinations = destinations or Destinations()
        self.max_routes = max_routes

    @classmethod
    def from_url(
        cls,
        url: str,
        timeout: float = DEFAULT_TIMEOUT,
        destinations: Destinations | None = None,
        max_routes: int = validate.MAX_ROUTES_PER_TOOL,
    ) -> RouteStore:
        """Connect (lazily) to the Redis at `url`, e.g. `redis://127.0.0.1:6379/0`."""
        try:
            client = redis.Redis.from_url(
                url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as exc:
            raise ValidationError(f"Redis URL {redacted(url)!r} is not usable: {exc}") from None
        return cls(client, url, destinations, max_routes)

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
        return self._all_hashes(PREFIX, self.tools())

    def all_redirects(self) -> dict[str, dict[str, str]]:
        """Every tool's canonical-host redirects (route -> host), fetched like all_routes."""
        with self._talking():
            keys = self._redis.scan_iter(match=REDIRECT + "*", count=_BATCH, _type="hash")
            tools = sorted({key[len(REDIRECT) :] for key in keys})
        return self._all_hashes(REDIRECT, tools)

    def _all_hashes(self, family: str, tools: list[str]) -> dict[str, dict[str, str]]:
        """`family<tool>` of each of `tools` that is not empty, in pipelined batches."""
        result: dict[str, dict[str, str]] = {}
        with self._talking():
            for start in range(0, len(tools), _BATCH):
                batch = tools[start : start + _BATCH]
                pipe = self._redis.pipeline(transaction=False)
                for tool in batch:
                    pipe.hgetall(family + tool)
                for tool, table in zip(batch, pipe.execute(), strict=True):
                    if table:
                        result[tool] = dict(table)
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

    def blocks(self, kind: BlockKind | None = None) -> list[Block]:
        """The block list entries of `kind` (default: every kind), by kind then entry."""
        kinds = BLOCK_KINDS if kind is None else (kind,)
        with self._talking():
            pipe = self._redis.pipeline(transaction=False)
            for each in kinds:
                pipe.hgetall(block_key(each))
            tables = pipe.execute()
        return [
            _block(each, entry, about)
            for each, table in zip(kinds, tables, strict=True)
            for entry, about in sorted(table.items())
        ]

    def token_generation(self, tool: str) -> int:
        """The current generation of `tool`'s registration token (0 until first rotated)."""
        validate.tool_name(tool)
        with self._talking():
            return int(self._redis.get(TOKEN_PREFIX + tool) or 0)

    # Replication ---------------------------------------------------------------------------

    def replication(self) -> Replication:
        """This Redis's role, offset and (for a replica) primary and link state."""
        with self._talking():
            return parse_replication(self._redis.info("replication"))

    def aof_rewriting(self) -> bool:
        """Whether an AOF rewrite runs or is scheduled, as one follows a replica's full sync (a
        redis-server told to stop in the middle of one takes 10 s to go)."""
        with self._talking():
            info = self._redis.info("persistence")
        return bool(info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled"))

    def pause_writes(self, milliseconds: int) -> None:
        """`CLIENT PAUSE <ms> WRITE`: hold every client's writes (reads go on) for at most
        `milliseconds`, so the offset stops moving and a replica can catch up exactly. Held writes
        wait, they do not fail, unless the client's own timeout is shorter than the pause."""
        with self._talking():
            self._redis.client_pause(milliseconds, all=False)

    def unpause(self) -> None:
        """`CLIENT UNPAUSE`: let held writes go on (on a replica by then, they fail as read-only)."""
        with self._talking():
            self._redis.client_unpause()

    def promote(self) -> None:
        """`REPLICAOF NO ONE`: this replica becomes a primary and keeps every key it holds."""
        with self._talking():
            self._redis.replicaof("NO", "ONE")

    def replicate_from(self, host: str, port: int) -> None:
        """`REPLICAOF host port`: this Redis becomes a read-only copy of the one at `host:port`.

        A former primary of the same history resyncs partially: it keeps its keys and catches up."""
        with self._talking():
            self._redis.replicaof(host, port)

    def save_role(self) -> bool:
        """`CONFIG REWRITE`: write the role REPLICAOF just gave this Redis (and every other setting
        changed at run time) into the config file it was started from, so a restart keeps it; the
        file rendered before still names the old primary. False, and nothing written, when Redis
        runs without a config file: then a restart forgets the role whatever we do."""
        try:
            with self._talking():
                self._redis.config_rewrite()
        except RouteStoreError as exc:
            if "without a config file" in str(exc):
                return False
            raise
        return True

    # Writes --------------------------------------------------------------------------------

    def _apply(self, write: Write) -> tuple[str, str | None]:
        """Run `write` through the one write script; (outcome, old value). Call inside _talking."""
        outcome, old = self._write(keys=write.keys(), args=write.args(self.max_routes))
        return outcome, old or None

    def _full(self, tool: str, count: int | str) -> RouteLimitError:
        return RouteLimitError(
            f"tool {tool} already has {count} routes, the most one tool may have"
            f" (dataplane.max_routes_per_tool is {self.max_routes}); delete one first"
        )

    def set_route(
        self,
        tool: str,
        route: str,
        backend: Backend,
        by: Attribution,
        *,
        token_generation: int | None = None,
        dry_run: bool = False,
    ) -> RouteChange:
        """Point `tool`'s `route` at `backend`; returns what changed (`changed` False: nothing written).

        With `token_generation`, only while the tool's token is still of that generation (checked
        in the same atomic step, so a rotated token cannot slip a write in between).
        """
        tool, route = validate.tool_name(tool), validate.route(route)
        self.destinations.check(backend)
        with self._talking():
            if dry_run:
                old = self._redis.hget(prefix_key(tool), route)
                count = int(self._redis.hlen(prefix_key(tool)))
                if old is None and count >= self.max_routes:
                    raise self._full(tool, count)
                return RouteChange(tool, route, "set", old, backend.url, dry_run=True)
            write = Write("set", tool, route, by, backend.url, token_generation)
            outcome, old = self._apply(write)
        if outcome == "rotated":
            raise ValidationError("token was rotated; fetch the current one")
        if outcome == "full":
            raise self._full(tool, old or 0)
        return RouteChange(tool, route, "set", old, backend.url)

    def delete_route(
        self,
        tool: str,
        route: str,
        by: Attribution,
        *,
        only_if_backend: str | None = None,
        token_generation: int | None = None,
        dry_run: bool = False,
    ) -> RouteChange:
        """Remove `tool`'s `route` (and its redirect).

        With `only_if_backend`, remove it only while it still points there: a late unregister
        from an old job must not drop a newer job's registration. With `token_generation`, only
        while the tool's token is still of that generation. Both are checked in the write itself.
        """
        tool, route = validate.tool_name(tool), validate.route(route)
        with self._talking():
            if dry_run:
                old = self._redis.hget(prefix_key(tool), route)
                return RouteChange(tool, route, "delete", old, None, dry_run=True)
            write = Write("delete", tool, route, by, only_if_backend or "", token_generation)
            outcome, old = self._apply(write)
        if outcome == "rotated":
            raise ValidationError("token was rotated; fetch the current one")
        return RouteChange(tool, route, "delete", old, old if outcome == "kept" else None)

    def delete_tool(self, tool: str, by: Attribution, *, dry_run: bool = False) -> list[RouteChange]:
        """Remove every route (and redirect) of `tool`, each as its own audited change."""
        return [self.delete_route(tool, route, by, dry_run=dry_run) for route in self.routes(tool)]

    def set_redirect(
        self,
        tool: str,
        route: str,
        host: str,
        by: Attribution,
        *,
        token_generation: int | None = None,
        dry_run: bool = False,
    ) -> RouteChange:
        """Record `registerCanonical`: `tool`'s `route` has canonical host `host` (audited).

        Bumps the version like a route write, so the data plane starts redirecting at once. With
        `token_generation`, only while the tool's token is still of that generation.
        """
        tool, route, host = validate.tool_name(tool), validate.route(route), validate.domain_name(host)
        with self._talking():
            if dry_run:
                old = self._redis.hget(redirect_key(tool), route)
                return RouteChange(tool, route, "redirect", old, host, dry_run=True)
            write = Write("redirect", tool, route, by, host, token_generation)
            outcome, old = self._apply(write)
        if outcome == "rotated":
            raise ValidationError("token was rotated; fetch the current one")
        return RouteChange(tool, route, "redirect", old, host)

    def rotate_token(self, tool: str, by: Attribution) -> int:
        """Invalidate `tool`'s current token by bumping its generation (audited); returns the new one."""
        validate.tool_name(tool)
        with self._talking():
            _, old = self._apply(Write("rotate-token", tool, "", by))
        return int(old or 0) + 1

    def delete_k8s_route(self, member: str, tool: str, route: str, by: Attribution) -> RouteChange:
        """Remove a kube2proxy-owned route and its `k8s_services` member, atomically."""
        tool, route = validate.tool_name(tool), validate.route(route)
        with self._talking():
            _, old = self._apply(Write("delete", tool, route, by, member=member))
        return RouteChange(tool, route, "delete", old, None)

    def set_k8s_routes(
        self, routes: Sequence[tuple[str, str, str, Backend]], by: Attribution
    ) -> list[RouteChange]:
        """Write kube2proxy-owned routes, as (member, tool, route, backend), in batched transactions.

        Each route records its ownership in `k8s_services`; one already in place is not written
        again. For kube2proxy's relists and event bursts: one round trip per thousand routes.
        A new route of a tool that has `max_routes` already is not written (nor its member): its
        change keeps the old value (None), so `new` differs from the backend asked for.
        """
        checked = [
            Write(
                "set",
                validate.tool_name(tool),
                validate.route(route),
                by,
                self.destinations.check(backend).url,
                None,
                member,
            )
            for member, tool, route, backend in routes
        ]
        changes: list[RouteChange] = []
        with self._talking():
            for start in range(0, len(checked), _BATCH):
                batch = checked[start : start + _BATCH]
                pipe = self._redis.pipeline(transaction=True)
                for write in batch:
                    self._write(keys=write.keys(), args=write.args(self.max_routes), client=pipe)
                for write, (outcome, old) in zip(batch, pipe.execute(), strict=True):
                    # "full": nothing written, so the change leaves the route absent.
                    before, after = (None, None) if outcome == "full" else (old or None, write.backend)
                    changes.append(RouteChange(write.tool, write.route, "set", before, after))
        return changes

    def add_block(self, kind: str, value: str, by: Attribution, *, dry_run: bool = False) -> BlockChange:
        """Add `value` to the block list of `kind` (canonical form kept); unchanged if already there."""
        return self._block_write("add", kind, value, by, dry_run)

    def remove_block(self, kind: str, value: str, by: Attribution, *, dry_run: bool = False) -> BlockChange:
        """Remove `value` from the block list of `kind`; unchanged (before False) if it was not there."""
        return self._block_write("remove", kind, value, by, dry_run)

    def _block_write(
        self, action: BlockAction, kind: str, value: str, by: Attribution, dry_run: bool
    ) -> BlockChange:
        checked_kind, entry = validate.block_entry(kind, value)
        key = block_key(checked_kind)
        with self._talking():
            if dry_run:
                present = bool(self._redis.hexists(key, entry))
                return BlockChange(checked_kind, entry, action, present, action == "add", dry_run=True)
            about = json.dumps({"time": float(now()), **who(by)})
            audit = flat({"time": now(), "kind": checked_kind, "action": action, "entry": entry, **who(by)})
            limit = BLOCK_LIMITS[checked_kind]
            keys = [key, VERSION_KEY, BLOCK_AUDIT_KEY]
            outcome = self._block(keys=keys, args=[action, entry, about, limit, AUDIT_MAXLEN, *audit])
        if outcome == "full":
            raise ValidationError(f"the {checked_kind} block list already holds its limit of {limit} entries")
        after = action == "add"
        return BlockChange(checked_kind, entry, action, after if outcome == "unchanged" else not after, after)

    def block_audit(self, limit: int = AUDIT_MAXLEN) -> list[dict[str, str]]:
        """The recorded block list changes, oldest first (each: time, kind, action, entry, actor...)."""
        with self._talking():
            raw = self._redis.xrevrange(BLOCK_AUDIT_KEY, count=limit)
        return [{"id": entry_id, **fields} for entry_id, fields in reversed(raw)]

    def forget_k8s_member(self, member: str) -> None:
        """Drop a `k8s_services` member that names no route we may delete (routes untouched)."""
        with self._talking():
            self._redis.srem(K8S_SERVICES, member)

    # Locks of playbook runs -----------------------------------------------------------------

    def hold_lock(self, name: str, run: str, holder: str, ttl_ms: int) -> str | None:
        """Take (or renew) lock `name` for `run` for `ttl_ms`; None when this run holds it now,
        else the other holder's JSON. A replica raises ReadOnlyReplicaError when the lock is free
        there: it gets the primary's by replication, so read it with `lock_holder` instead."""
        with self._talking():
            held: str | None = self._hold(keys=[LOCK_PREFIX + name], args=[run, holder, ttl_ms])
        return held

    def lock_holder(self, name: str) -> str | None:
        """The holder (JSON) of lock `name`, or None when it is free."""
        with self._talking():
            held: str | None = self._redis.get(LOCK_PREFIX + name)
        return held

    def release_lock(self, name: str, run: str) -> bool:
        """Delete lock `name` if `run` holds it; whether it did (a replica raises ReadOnlyReplicaError)."""
        with self._talking():
            return bool(self._release(keys=[LOCK_PREFIX + name], args=[run]))


def _audit_entry(entry_id: str, fields: Mapping[str, str]) -> AuditEntry:
    return AuditEntry(
        id=entry_id,
        time=float(fields.get("time", "0")),
        tool=fields.get("tool", ""),
        action=fields.get("action", ""),
        route=fields.get("route", ""),
        backend=fields.get("backend", ""),
        actor=fields.get("actor", ""),
        reason=fields.get("reason", ""),
        task_id=fields.get("task_id", ""),
    )


def _block(kind: BlockKind, entry: str, about: str) -> Block:
    """A stored block list entry; metadata another writer (redis-cli) left out reads as empty."""
    try:
        data = json.loads(about)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}
    text = {name: str(data.get(name, "")) for name in ("actor", "reason", "task_id")}
    when = data.get("time")
    return Block(kind, entry, time=float(when) if isinstance(when, int | float) else 0.0, **text)
