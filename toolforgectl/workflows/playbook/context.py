"""What a step sees while it runs: the fleet, its options, the run, and adapters built on first use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from toolforgectl.core.models import Attribution
from toolforgectl.core.waiting import wait_until
from toolforgectl.workflows.playbook.steps import Change, Check

if TYPE_CHECKING:
    from toolforgectl.adapters.cloud import Cloud
    from toolforgectl.adapters.hiera import Hiera
    from toolforgectl.adapters.remote import Remote
    from toolforgectl.adapters.routestore import RouteStore
    from toolforgectl.core.config import Fleet
    from toolforgectl.workflows.playbook.spec import Entry

T = TypeVar("T")


@dataclass
class Adapters:
    """The adapters of one run, each built the first time a step asks for it, then shared."""

    fleet: Fleet
    _built: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, build: Callable[[], T]) -> T:
        """The adapter called `name`, built by `build` on first use."""
        if name not in self._built:
            self._built[name] = build()
        found: T = self._built[name]
        return found

    def close(self) -> None:
        """Close every adapter built that holds connections (the remote adapter's SSH sessions)."""
        for adapter in self._built.values():
            close = getattr(adapter, "close", None)
            if callable(close):
                close()
        self._built.clear()


@dataclass
class StepContext:
    """Everything a step's check, apply, verify, rollback and instructions may use.

    `args` are the operation's arguments (`hiera set KEY VALUE`: key, value); `options` the
    step's typed options from the playbook; `entry` its retry, timeout and host settings.
    """

    fleet: Fleet
    entry: Entry
    args: Mapping[str, Any]
    run_id: str
    by: Attribution
    dry_run: bool
    resumed: bool
    adapters: Adapters
    progress: Callable[[str], None] = lambda _line: None
    # What this step's check found when the plan was made (None while planning, and for preflight):
    # the state the operator confirmed, which apply must still find (a compare-and-swap).
    planned: Check | None = None
    changes: list[Change] = field(default_factory=list)

    @property
    def options(self) -> Any:
        """The step's options as its registered options type (None when it takes none)."""
        return self.entry.options

    @property
    def reason(self) -> str:
        """The run's reason in Spicerack's shape: `<reason> - user@host[ - T123]`."""
        return reason_line(self.by)

    def record(self, target: str, old: Any, new: Any) -> Change:
        """Note one change apply made (kept in the audit even if apply fails later)."""
        change = Change(target, old, new)
        self.changes.append(change)
        return change

    def wait(self, check: Callable[[], T], what: str, interval: float = 0.2) -> T:
        """Poll `check` until truthy, within the step's `timeout`; TimedOutError names `what`."""
        return wait_until(check, what, timeout=self.entry.timeout, interval=interval)

    def hiera(self) -> Hiera:
        """The fleet's hiera (the `hiera:` section; a ConfigError when it is missing)."""
        from toolforgectl.adapters import hiera

        return self.adapters.get("hiera", lambda: hiera.open_hiera(self.fleet.need_hiera()))

    def remote(self) -> Remote:
        """The fleet's hosts over SSH (the `remote:` section); its writes are planned, not run,
        in a dry run, so a step may call it from check and apply alike."""
        from toolforgectl.adapters.remote import Remote

        return self.adapters.get("remote", lambda: Remote(self.fleet.remote, dry_run=self.dry_run))

    def cloud(self) -> Cloud:
        """The fleet's cloud (the `cloud:` section; a ConfigError when it is missing). The runner
        never calls a step's apply in a dry run, so only apply may call its writes."""
        from toolforgectl.adapters.cloud import Cloud

        return self.adapters.get("cloud", lambda: Cloud.connect(self.fleet.needs_cloud()))

    def store(self, proxy: str | None = None) -> RouteStore:
        """The route store (Redis) of `proxy`, by default the fleet config's active proxy."""
        from toolforgectl.adapters.routestore import RouteStore

        url = self.fleet.proxy(proxy).redis
        return self.adapters.get(f"store:{url}", lambda: RouteStore.from_url(url))


def reason_line(by: Attribution) -> str:
    """`<reason> - user@host[ - T123]`, the shape Spicerack gives every side effect's reason."""
    parts = [by.reason or "no reason given", by.actor, *([by.task_id] if by.task_id else [])]
    return " - ".join(parts)
