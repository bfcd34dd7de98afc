"""Carrying out one parsed request: prove the token, apply the rules, write through the route store.

Runs in the listener's small worker pool (the route store speaks blocking redis-py). Every accepted
change goes through RouteStore, so it bumps the version and lands in the audit stream with the
actor `proxylistener@<peer>` (what `toolforgectl debug history TOOL` shows), as an operator's does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import activeproxy, tokens, wire
from toolforgectl.core.errors import (
    ActiveProxyError,
    ReadOnlyReplicaError,
    RefusedError,
    RouteLimitError,
    RouteStoreError,
    ValidationError,
)
from toolforgectl.core.models import Attribution
from toolforgectl.daemons.proxylistener import authorize
from toolforgectl.daemons.proxylistener.authorize import Policy

ACTOR = "proxylistener"
log = logging.getLogger("proxylistener")


@dataclass(frozen=True)
class Outcome:
    """How a request ended: the tool (once known), a metrics label, and the reply bytes."""

    tool: str | None
    label: str
    reply: bytes


@dataclass
class Registrar:
    """Applies requests to one route store under one policy."""

    store: RouteStore
    policy: Policy
    key: bytes | None
    canonical_domain: str
    standby_reply: Callable[[], bytes]

    def handle(self, request: wire.Request, peer: str, ident_tool: str | None) -> Outcome:
        """Carry out `request` from `peer` (whose identd named `ident_tool`, if ident was used)."""
        tool, generation = ident_tool, None
        try:
            if tool is None:
                tool, generation = self._token(request.token)
            authorize.check_tool(self.policy, tool)
            if request.registers:
                self._register(request, tool, generation, peer)
            else:
                self._unregister(request, tool, generation, peer)
        except RouteLimitError as exc:  # checked atomically with the write, like the generation
            return Outcome(tool, "refused", wire.sentence(f"Refused: {exc}."))
        except ValidationError as exc:  # the token's generation is checked atomically with the write
            return Outcome(tool, "unauthenticated", wire.sentence(f"Refused: {exc}."))
        except RefusedError as exc:
            label = "unauthenticated" if tool is None else "refused"
            return Outcome(tool, label, wire.sentence(str(exc)))
        except ReadOnlyReplicaError:
            return Outcome(tool, "standby", self.standby_reply())
        except RouteStoreError:
            return Outcome(tool, "store_error", wire.sentence("The route store is unavailable; try again."))
        return Outcome(tool, "ok", wire.OK)

    def _token(self, token: str | None) -> tuple[str, int]:
        """The tool and generation a token proves (its MAC checked; its generation not yet)."""
        if token is None or self.key is None:
            raise RefusedError("This proxy needs your tool's token line.")
        try:
            return tokens.prove(self.key, token)
        except ValidationError as exc:
            raise RefusedError(f"Refused: {exc}.") from None

    def _register(self, request: wire.Request, tool: str, generation: int | None, peer: str) -> None:
        assert request.destination is not None  # the parser guarantees it for register commands
        authorize.check_destination(self.policy, request.destination, peer)
        by = Attribution(f"{ACTOR}@{peer}")
        self.store.set_route(tool, request.route, request.destination, by, token_generation=generation)
        if request.command == wire.REGISTER_CANONICAL:
            host = f"{tool}.{self.canonical_domain}"
            self.store.set_redirect(tool, request.route, host, by, token_generation=generation)

    def _unregister(self, request: wire.Request, tool: str, generation: int | None, peer: str) -> None:
        current = self.store.routes(tool).get(request.route)
        if current is None:
            return  # already gone: an epilog running twice is not an error
        authorize.check_owned(self.policy, current, peer)
        by = Attribution(f"{ACTOR}@{peer}")
        change = self.store.delete_route(
            tool, request.route, by, only_if_backend=current, token_generation=generation
        )
        if change.new is not None:
            raise RefusedError("The route changed while removing it; not removed.")


def standby_reply(active_proxy_file: str, fleet_active: str | None) -> bytes:
    """What a standby answers: where to register instead, as /etc/active-proxy says (core/activeproxy.py)."""
    try:
        active = activeproxy.read(active_proxy_file, fleet_active)
    except ActiveProxyError as exc:
        log.warning("a standby cannot name the active proxy: %s", exc)
        return wire.sentence("This proxy is a standby; the active proxy is not known here.")
    if active.host is None:
        return wire.sentence("This proxy is a standby, and registration is switched off.")
    return wire.sentence(f"This proxy is a standby; register with {active.host}.")
