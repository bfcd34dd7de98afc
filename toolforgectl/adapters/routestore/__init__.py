"""The route store: the one module that owns the Redis key schema of the dynamic proxy.

Keys shared with the original system (their meaning never changes):
    prefix:<tool>    hash  route regex -> backend URL (`http://10.0.0.5:41234`)
    prefix:admin     hash  the fallback tool
    redirect:<tool>  hash  route -> canonical host name (registerCanonical)
    k8s_services     set   `<namespace>/<service>/<route>` owned by kube2proxy
Keys toolforgectl adds, each under its own name:
    toolforgectl:routes:version   counter bumped by every route change, so caches invalidate at once
    toolforgectl:audit:<tool>     stream of accepted changes (capped), for `debug history`
    toolforgectl:token:<tool>     generation of the tool's proxylistener token (see tokens.py)
    toolforgectl:lock:<name>      JSON holder of a playbook run's lock, with a TTL
                                  (workflows/playbook/lock.py: one per fleet and operation)
    toolforgectl:block:<kind>     hash  block list entry -> who added it, why, when (JSON); kinds:
                                  ip (CIDR network), user-agent and referer (regex); watched and
                                  cached by the data plane like routes (our writes bump the version)
    toolforgectl:block:audit      stream of accepted block list changes (capped)
The Lua side mirrors these names once, in lua/urlproxy/schema.lua; tests/fixtures/schema.json pins both.

Modules: `schema` (the key names), `scripts` (the server-side scripts every write goes through),
`store` (RouteStore: the reads and writes), `replication` (roles, offsets, waiting for a replica).
Import from the package: `from toolforgectl.adapters.routestore import RouteStore`.
"""

from toolforgectl.adapters.routestore.replication import Replication, wait_caught_up
from toolforgectl.adapters.routestore.schema import (
    ADMIN_TOOL,
    AUDIT_MAXLEN,
    AUDIT_PREFIX,
    BLOCK_AUDIT_KEY,
    BLOCK_LIMITS,
    BLOCK_PREFIX,
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
from toolforgectl.adapters.routestore.store import RouteStore

__all__ = [
    "ADMIN_TOOL",
    "AUDIT_MAXLEN",
    "AUDIT_PREFIX",
    "BLOCK_AUDIT_KEY",
    "BLOCK_LIMITS",
    "BLOCK_PREFIX",
    "DEFAULT_TIMEOUT",
    "K8S_SERVICES",
    "LOCK_PREFIX",
    "PREFIX",
    "REDIRECT",
    "TOKEN_PREFIX",
    "VERSION_KEY",
    "Replication",
    "RouteStore",
    "audit_key",
    "block_key",
    "prefix_key",
    "redacted",
    "redirect_key",
    "wait_caught_up",
]
