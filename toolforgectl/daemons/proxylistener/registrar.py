"""Carrying out one parsed request: prove the token, apply the rules, write through the route store.

Runs in the listener's small worker pool (the route store speaks blocking redis-py). Every accepted
change goes through RouteStore, so it bumps the version and lands in the audit stream with the
actor `proxylistener@<peer>` (what `toolforgectl debug history TOOL` shows), as an operator's does.
The store is the active proxy's, picked per request by active.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import tokens, wire
from toolforgectl.core.errors import (
    ReadOnlyReplicaError,
    RefusedError,
    RouteLimitError,
    RouteStoreError,
    ValidationError,
)
from toolforgectl.core.models import Attribution
from toolforgectl.daemons.proxylistener import authorize
from toolforgectl.daemons.proxylistener.active import SWITCHED_OFF, ActiveRoute
from toolforgectl.daemons.proxylistener.authorize import Policy

ACTOR = "proxylistener"
log = logging.getLogger("proxylistener")


@dataclass(frozen=True)
class Outcome:
    """How a request ended: the tool (once known), a metrics label, the reply bytes, and the other
    proxy whose Redis took the write (None: this proxy's own)."""

    tool: str | None
    label: str
    reply: bytes
    written_to: str | None = None


@dataclass
class Registrar:
    """Applies requests to the active proxy's route store under one policy."""

    route: ActiveRoute
    policy: Policy
    key: bytes | None
    canonical_domain: str

    def handle(self, request: wire.Request, peer: str, ident_tool: str | None) -> Outcome:
        """Carry out `request` from `peer` (whose identd named `ident_tool`, if ident was used)."""
        tool, generation = ident_tool, None
        target = self.route.target()
        if target is None:
            return Outcome(tool, "switched_off", SWITCHED_OFF)
        try:
            if tool is None:
                tool, generation = self._token(request.token)
            authorize.check_tool(self.policy, tool)
            if request.registers:
                self._register(target.store, request, tool, generation, peer)
            else:
                self._unregister(target.store, request, tool, generation, peer)
        except RouteLimitError as exc:  # checked atomically with the write, like the generation
            return Outcome(tool, "refused", wire.sentence(f"Refused: {exc}."))
        except ValidationError as exc:  # the token's generation is checked atomically with the write
            return Outcome(tool, "unauthenticated", wire.sentence(f"Refused: {exc}."))
        except RefusedError as exc:
            label = "unauthenticated" if tool is None else "refused"
            return Outcome(tool, label, wire.sentence(str(exc)))
        except ReadOnlyReplicaError:
            return Outcome(tool, "standby", target.read_only_reply, target.proxy)
        except RouteStoreError:
            reply = wire.sentence("The route store is unavailable; try again.")
            return Outcome(tool, "store_error", reply, target.proxy)
        return Outcome(tool, "ok", wire.OK, target.proxy)

    def _token(self, token: str | None) -> tuple[str, int]:
        """The tool and generation a token proves (its MAC checked; its generation not yet)."""
        if token is None or self.key is None:
            raise RefusedError("This proxy needs your tool's token line.")
        try:
            return tokens.prove(self.key, token)
        except ValidationError as exc:
            raise RefusedError(f"Refused: {exc}.") from None

    def _register(
        self, store: RouteStore, request: wire.Request, tool: str, generation: int | None, peer: str
    ) -> None:
        assert request.destination is not None  # the parser guarantees it for register commands
        authorize.check_destination(self.policy, request.destination, peer)
        by = Attribution(f"{ACTOR}@{peer}")
        store.set_route(tool, request.route, request.destination, by, token_generation=generation)
        if request.command == wire.REGISTER_CANONICAL:
            host = f"{tool}.{self.canonical_domain}"
            store.set_redirect(tool, request.route, host, by, token_generation=generation)

    def _unregister(
        self, store: RouteStore, request: wire.Request, tool: str, generation: int | None, peer: str
    ) -> None:
        current = store.routes(tool).get(request.route)
        if current is None:
            return  # already gone: an epilog running twice is not an error
        authorize.check_owned(self.policy, current, peer)
        by = Attribution(f"{ACTOR}@{peer}")
        change = store.delete_route(
            tool, request.route, by, only_if_backend=current, token_generation=generation
        )
        if change.new is not None:
            raise RefusedError("The route changed while removing it; not removed.")
