"""What every command shares: global options, and how they turn into a config and a route store.

Nothing heavy is imported here at module level: the config parser and the Redis client load when
a command first asks for `fleet` or `store()`, so `--help`, `--version` and TAB completion stay fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from toolforgectl.adapters.routestore import RouteStore
    from toolforgectl.core.config import Fleet

# The global options, as written before the command (`toolforgectl --redis URL routes list`).
GLOBAL_OPTIONS = ("--config", "--redis", "--proxy")


@dataclass
class Settings:
    """The global options, resolved lazily so commands that need no config never read it.

    `command` and `as_json` say what is running and whether it answers in JSON; the `--json`
    option fills them in, so that an error ending the command is reported the same way.
    """

    config_option: str | None = None
    redis_url: str | None = None
    proxy_name: str | None = None
    command: str = ""
    as_json: bool = False

    @cached_property
    def fleet(self) -> Fleet:
        """The fleet config; a missing or broken file is a ConfigError."""
        from toolforgectl.core import config

        return config.load(config.config_path(self.config_option))

    def store(self) -> RouteStore:
        """The route store of `--redis`, else of `--proxy` (default: the active proxy).

        Its writes follow the fleet's destination rule (core/destinations.py) and its per-tool route
        cap (`dataplane.max_routes_per_tool`). With `--redis` and no fleet config file, the defaults
        apply: no loopback backends, and the default cap.
        """
        from toolforgectl.adapters.routestore import RouteStore
        from toolforgectl.core.destinations import Destinations

        if self.redis_url and not self._has_config():
            return RouteStore.from_url(self.redis_url, destinations=Destinations())
        destinations = Destinations.of_fleet(self.fleet)
        cap = self.fleet.dataplane.max_routes_per_tool
        url = self.redis_url or self.fleet.proxy(self.proxy_name).redis
        return RouteStore.from_url(url, destinations=destinations, max_routes=cap)

    def _has_config(self) -> bool:
        """Whether a fleet config file is there to read (a broken one still fails when read)."""
        from toolforgectl.core import config
        from toolforgectl.core.errors import ConfigError

        try:
            return os.path.exists(config.config_path(self.config_option))
        except ConfigError:
            return False


def settings(ctx: typer.Context) -> Settings:
    """The Settings of this run (the root callback fills them in from the global options)."""
    return ctx.find_root().ensure_object(Settings)


def _record_json(ctx: typer.Context, value: bool) -> bool:
    """Remember which command runs and whether with `--json`: main() reports its errors alike."""
    current = settings(ctx)
    current.command = command_name(ctx)
    current.as_json = value
    return value


def command_name(ctx: typer.Context) -> str:
    """The command as the JSON envelope names it: `routes show`, without the program name."""
    return " ".join(ctx.command_path.split()[1:])


# The options every read (--json) and every write (--dry-run) command shares, spelled once.
JsonOpt = Annotated[
    bool,
    typer.Option("--json", callback=_record_json, help="Print the stable JSON envelope (docs/cli.md)."),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Say what would change; write nothing.")]
# Every write is attributed to `user@host` in the audit record; these say why (`debug history`).
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", metavar="TEXT", help="Why: kept in the audit record.")
]
TaskIdOpt = Annotated[
    str | None,
    typer.Option("--task-id", metavar="ID", help="The task (e.g. T12345), kept in the audit record."),
]
