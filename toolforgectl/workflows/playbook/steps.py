"""What a step is: the Step protocol, what its check and apply return, and the registry of steps.

A playbook (playbooks/<operation>.yaml) names steps; the steps are Python classes registered by
name. The runner calls them in this order, and only this order:

    check(ctx)    READ the real state: is the target state there already, what would change?
    apply(ctx)    the write; never called with --dry-run, nor when check says it is done already
    verify(ctx)   after apply: raise unless the target state holds (retried with backoff)
    rollback(ctx) optional: undo apply, for steps before the playbook's point of no return
    instructions(ctx) -> str   for steps from the point of no return on: the exact operator text
                               that puts things right when a later step fails

A preflight step has only `check`: `done=True` means the fleet is ready, `done=False` (with a
`note`) or an error means it is not. Every method gets a StepContext (context.py).

    @steps.register("set-hiera-key", options=SetKeyOptions)
    class SetHieraKey:
        def check(self, ctx: StepContext) -> Check: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from toolforgectl.workflows.playbook.context import StepContext


@dataclass(frozen=True)
class Change:
    """One thing a step changes (or would change): `target` from `old` to `new`."""

    target: str
    old: Any
    new: Any

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, as the audit log and `--json` show it."""
        return {"target": self.target, "old": self.old, "new": self.new}

    def __str__(self) -> str:
        return f"{self.target}: {self.old!r} -> {self.new!r}"


@dataclass(frozen=True)
class Check:
    """What `check` found: whether the target state holds already, and what applying would change."""

    done: bool
    changes: tuple[Change, ...] = ()
    note: str = ""  # a line for the operator: why it is done, what it would do, what is wrong
    diff: str = ""  # optional unified diff of the planned change (hiera's file, say)

    @classmethod
    def already(cls, note: str) -> Check:
        """The target state holds: nothing to do."""
        return cls(True, note=note)

    @classmethod
    def would(cls, *changes: Change, note: str = "", diff: str = "") -> Check:
        """Applying would make `changes`."""
        return cls(False, tuple(changes), note=note or "; ".join(map(str, changes)), diff=diff)


@dataclass(frozen=True)
class Outcome:
    """What `apply` did."""

    changes: tuple[Change, ...] = ()
    note: str = ""
    diff: str = ""


@runtime_checkable
class Preflight(Protocol):
    """A check-only step: it reads, and never changes anything."""

    def check(self, ctx: StepContext) -> Check:
        """Read the real state; `done=True` when the fleet is ready for the operation."""


@runtime_checkable
class Step(Protocol):
    """A step that changes something (see the module docstring for the order of calls)."""

    def check(self, ctx: StepContext) -> Check:
        """Read the real state: done already? what would change?"""

    def apply(self, ctx: StepContext) -> Outcome:
        """Make the change (never called in --dry-run, nor when check says done)."""

    def verify(self, ctx: StepContext) -> None:
        """Raise a ToolforgectlError unless the target state holds now."""


@runtime_checkable
class Reversible(Protocol):
    """A step that can undo its apply (steps before the point of no return must be)."""

    def rollback(self, ctx: StepContext) -> None:
        """Undo what apply did; safe to call when apply did only part of it."""


@runtime_checkable
class Instructed(Protocol):
    """A step past the point of no return: it tells the operator what to do instead of rolling back."""

    def instructions(self, ctx: StepContext) -> str:
        """The exact operator text (commands to run) that puts things right."""


@dataclass(frozen=True)
class StepType:
    """A registered step: its name, class and the type its playbook options are checked against."""

    name: str
    cls: type[Any]
    options: type[Any] | None = None
    summary: str = field(default="")

    def make(self) -> Any:
        """A fresh instance for one run."""
        return self.cls()


_REGISTRY: dict[str, StepType] = {}
C = TypeVar("C", bound=type[Any])


def register(name: str, *, options: type[Any] | None = None) -> Callable[[C], C]:
    """Class decorator: make the step known as `name`; `options` is the pydantic dataclass its
    `options:` in a playbook must validate as (None: it takes none)."""

    def add(cls: C) -> C:
        if not isinstance(cls, type) or not hasattr(cls, "check"):
            raise TypeError(f"step {name!r}: a step is a class with at least `check`")
        known = _REGISTRY.get(name)
        if known is not None and known.cls is not cls:
            raise TypeError(
                f"step {name!r} is registered twice ({known.cls.__qualname__}, {cls.__qualname__})"
            )
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        _REGISTRY[name] = StepType(name, cls, options, summary)
        return cls

    return add


def lookup(name: str) -> StepType | None:
    """The step registered as `name`, if any."""
    return _REGISTRY.get(name)


def known() -> list[str]:
    """The names of every registered step, sorted."""
    return sorted(_REGISTRY)
