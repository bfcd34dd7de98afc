"""What every command shares: global options, and how they turn into a config and a route store."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

import typer

from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import config

# The options every read (--json) and every write (--dry-run) command shares, spelled once.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the stable JSON envelope (docs/cli.md).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Say what would change; write nothing.")]
# Every write is attributed to `user@host` in the audit record; these say why (`debug history`).
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", metavar="TEXT", help="Why: kept in the audit record.")
]
TaskIdOpt = Annotated[
    str | None,
    typer.Option("--task-id", metavar="ID", help="The task (e.g. T12345), kept in the audit record."),
]


@dataclass
class Settings:
    """The global options, resolved lazily so commands that need no config never read it."""

    config_option: str | None = None
    redis_url: str | None = None
    proxy_name: str | None = None

    @cached_property
    def fleet(self) -> config.Fleet:
        """The fleet config; a missing or broken file is a ConfigError."""
        return config.load(config.config_path(self.config_option))

    def store(self) -> RouteStore:
        """The route store of `--redis`, else of `--proxy` (default: the active proxy)."""
        if self.redis_url:
            return RouteStore.from_url(self.redis_url)
        return RouteStore.from_url(self.fleet.proxy(self.proxy_name).redis)


def settings(ctx: typer.Context) -> Settings:
    """The Settings the root callback stored on the context."""
    found = ctx.find_root().obj
    return found if isinstance(found, Settings) else Settings()
