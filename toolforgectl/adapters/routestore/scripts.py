"""The route store's server-side scripts, and the arguments one write passes them.

Every write goes through one script, `WRITE`: it checks the write's guards, changes the route (or
the token generation), bumps the version and appends the audit entry, atomically, and does none of
that when the write would change nothing. The audit entry's fields come from one function here,
`audit_fields`; so whoever writes (the CLI, proxylistener, kube2proxy), the record reads the same.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from toolforgectl.adapters.routestore.schema import (
    AUDIT_MAXLEN,
    K8S_SERVICES,
    TOKEN_PREFIX,
    VERSION_KEY,
    audit_key,
    prefix_key,
    redirect_key,
)
from toolforgectl.core.models import Action, Attribution

# The one write. KEYS: 1 prefix:<tool>, 2 redirect:<tool>, 3 the version, 4 the audit stream,
# 5 the token generation, 6 k8s_services. ARGV: 1 action (set | delete | rotate-token | redirect),
# 2 route, 3 backend (set: the new one; delete: the one the route must still point at, '' for any;
# redirect: the canonical host of redirect:<tool>'s route),
# 4 the token generation the write requires ('' for any), 5 a k8s_services member to add (set) or
# remove (delete), '' for none, 6 the audit stream's length, 7 the most routes a tool may have,
# 8.. the audit entry's fields.
# Returns {outcome, old}: outcome is done, unchanged (nothing to do: nothing written, no version
# bump, no audit entry), kept (the route points elsewhere now), rotated (the token is stale) or
# full (a new route of a tool that has as many as it may have; `old` is how many it has).
WRITE = """
local action, route, backend = ARGV[1], ARGV[2], ARGV[3]
if ARGV[4] ~= '' and tonumber(redis.call('GET', KEYS[5]) or '0') ~= tonumber(ARGV[4]) then
    return {'rotated', ''}
end
local old, audited
if action == 'rotate-token' then
    old = redis.call('GET', KEYS[5]) or '0'
    redis.call('INCR', KEYS[5])
    audited = ''
elseif action == 'set' then
    old = redis.call('HGET', KEYS[1], route) or ''
    if old == '' then
        local count = redis.call('HLEN', KEYS[1])
        if count >= tonumber(ARGV[7]) then return {'full', tostring(count)} end
    end
    if ARGV[5] ~= '' then redis.call('SADD', KEYS[6], ARGV[5]) end
    if old == backend then return {'unchanged', old} end
    redis.call('HSET', KEYS[1], route, backend)
    redis.call('INCR', KEYS[3])
    audited = backend
elseif action == 'redirect' then
    old = redis.call('HGET', KEYS[2], route) or ''
    if old == backend then return {'unchanged', old} end
    redis.call('HSET', KEYS[2], route, backend)
    redis.call('INCR', KEYS[3])
    audited = backend
else
    old = redis.call('HGET', KEYS[1], route) or ''
    if ARGV[5] ~= '' then redis.call('SREM', KEYS[6], ARGV[5]) end
    if old == '' then return {'unchanged', ''} end
    if backend ~= '' and old ~= backend then return {'kept', old} end
    redis.call('HDEL', KEYS[1], route)
    redis.call('HDEL', KEYS[2], route)
    redis.call('INCR', KEYS[3])
    audited = old
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'backend', audited, unpack(ARGV, 8))
return {'done', old}
"""


# A playbook run's lock. KEYS: 1 the lock. ARGV: 1 the run id, 2 the holder (JSON with a `run`
# field), 3 the TTL in ms. Free, or already this run's (a renewal, or a resumed run taking over its
# own lock): set it and return nil; held by another run: return that holder, unchanged.
HOLD = """
local current = redis.call('GET', KEYS[1])
if current then
    local ok, held = pcall(cjson.decode, current)
    if not ok or type(held) ~= 'table' or held.run ~= ARGV[1] then return current end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
"""
# KEYS: 1 the lock. ARGV: 1 the run id. Deletes the lock only while that run holds it.
RELEASE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local ok, held = pcall(cjson.decode, current)
if ok and type(held) == 'table' and held.run == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# A block list write. KEYS: 1 toolforgectl:block:<kind>, 2 the version, 3 the block audit stream.
# ARGV: 1 action (add | remove), 2 the entry, 3 its metadata (add), 4 the list's limit, 5 the audit
# stream's length, 6.. the audit entry's fields. Returns unchanged (already so: nothing written),
# full (add refused: the list is at its limit) or done.
BLOCK_WRITE = """
local present = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
if (ARGV[1] == 'add') == present then return 'unchanged' end
if ARGV[1] == 'add' then
    if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 'full' end
    redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
else
    redis.call('HDEL', KEYS[1], ARGV[2])
end
redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 6))
return 'done'
"""


@dataclass(frozen=True)
class Write:
    """One call of `WRITE`: what to do, its guards, and who does it."""

    action: Action
    tool: str
    route: str
    by: Attribution
    backend: str = ""
    token_generation: int | None = None
    member: str = ""

    def keys(self) -> list[str]:
        """The KEYS of the script: every key a write may touch, declared up front."""
        return [
            prefix_key(self.tool),
            redirect_key(self.tool),
            VERSION_KEY,
            audit_key(self.tool),
            TOKEN_PREFIX + self.tool,
            K8S_SERVICES,
        ]

    def args(self, max_routes: int) -> list[str | int]:
        """The ARGV of the script: the write, its guards, then the audit entry's fields."""
        generation = "" if self.token_generation is None else self.token_generation
        guards: list[str | int] = [self.action, self.route, self.backend, generation, self.member]
        audit = audit_fields(self.tool, self.action, self.route, self.by)
        return [*guards, AUDIT_MAXLEN, max_routes, *audit]


def audit_fields(tool: str, action: Action, route: str, by: Attribution) -> list[str]:
    """The audit entry of a write, as the field/value pairs XADD takes.

    The script adds `backend`: for a delete, only it knows (atomically) what the route pointed at.
    """
    return flat({"time": now(), "tool": tool, "action": action, "route": route, **who(by)})


def now() -> str:
    return f"{time.time():.3f}"


def who(by: Attribution) -> dict[str, str]:
    """Who made a change and why, as every audit record names them."""
    return {"actor": by.actor, "reason": by.reason, "task_id": by.task_id}


def flat(fields: Mapping[str, str]) -> list[str]:
    """Field/value pairs as the flat list XADD takes."""
    return [item for pair in fields.items() for item in pair]
