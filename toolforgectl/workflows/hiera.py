"""Hiera on its own: `toolforgectl hiera show [KEY]`, and the steps of playbooks/hiera-set.yaml.

`hiera set KEY VALUE` runs through the playbook engine like every change (plan, --dry-run,
confirmation, lock, reason, audit); its one step writes by compare-and-swap against the value the
plan showed, so a key someone changed after the operator confirmed is never overwritten.
"""

from __future__ import annotations

from typing import Any

from toolforgectl.adapters.hiera import MISSING, open_hiera
from toolforgectl.core.config import Fleet
from toolforgectl.core.errors import NotFoundError, StepError
from toolforgectl.workflows.playbook import steps
from toolforgectl.workflows.playbook.context import StepContext
from toolforgectl.workflows.playbook.steps import Change, Check, Outcome


def show(fleet: Fleet, key: str | None = None) -> dict[str, Any]:
    """`{"where", "data"}` of the whole document, or `{"where", "key", "value"}` of one key."""
    hiera = open_hiera(fleet.need_hiera())
    data = hiera.read().data
    if key is None:
        return {"where": hiera.where, "data": data}
    if key not in data:
        raise NotFoundError(f"{hiera.where} has no key {key!r}")
    return {"where": hiera.where, "key": key, "value": data[key]}


@steps.register("hiera-readable")
class HieraReadable:
    """Hiera can be read and is a mapping of keys."""

    def check(self, ctx: StepContext) -> Check:
        """Read the whole document once."""
        hiera = ctx.hiera()
        return Check.already(f"{hiera.where}: {len(hiera.read().data)} keys")


@steps.register("set-hiera-key")
class SetHieraKey:
    """Set hiera's `key` argument to the `value` argument (compare-and-swap, with a diff)."""

    def check(self, ctx: StepContext) -> Check:
        """Done when the key holds the value; else the change, with the document's diff."""
        key, value = ctx.args["key"], ctx.args["value"]
        plan = ctx.hiera().plan(key, value)
        if not plan.changed:
            return Check.already(f"{key} is {value!r} already")
        return Check.would(Change(f"hiera {key}", plan.old, value), diff=plan.diff)

    def apply(self, ctx: StepContext) -> Outcome:
        """Write, if the key still holds what the plan showed."""
        key, value = ctx.args["key"], ctx.args["value"]
        change = ctx.hiera().set(key, value, expect=_planned_old(ctx), message=_message(ctx, key, value))
        ctx.record(f"hiera {key}", change.old, change.new)
        return Outcome(diff=change.diff)

    def verify(self, ctx: StepContext) -> None:
        """Read the key back."""
        key, value = ctx.args["key"], ctx.args["value"]
        found = ctx.hiera().get(key)
        if found is MISSING or found != value:
            raise StepError(f"hiera {key} reads {None if found is MISSING else found!r}, not {value!r}")

    def rollback(self, ctx: StepContext) -> None:
        """Put back what the plan showed (remove the key if it was not there), only while the key
        holds our value: a value someone else wrote is theirs, not ours to undo."""
        key, value = ctx.args["key"], ctx.args["value"]
        if ctx.hiera().get(key) != value:
            return
        old = _planned_old(ctx)
        ctx.hiera().set(key, old, expect=value, message=_message(ctx, key, old, rollback=True))


def _planned_old(ctx: StepContext) -> Any:
    """The key's value when the plan was made (MISSING: it was absent)."""
    if ctx.planned is None or not ctx.planned.changes:
        return ctx.hiera().get(ctx.args["key"])
    old = ctx.planned.changes[0].old
    return MISSING if old is None else old


def _message(ctx: StepContext, key: str, value: Any, *, rollback: bool = False) -> str:
    """The commit message of a file backend in git: what, then why in Spicerack's reason shape."""
    what = f"unset {key}" if value is MISSING else f"set {key} to {value!r}"
    head = f"hiera: {'roll back: ' if rollback else ''}{what}"
    return f"{head}\n\n{ctx.reason}\ntoolforgectl run {ctx.run_id}\n"
