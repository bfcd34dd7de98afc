"""Test-only steps whose real state is files in the run's `dir` argument, so a test can see,
change and wait for it. Each one logs its rollback to `dir/rollbacks.log`, in the order called."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import StrictInt, StrictStr
from pydantic.dataclasses import dataclass

from toolforgectl.core.config.schema import SECTION
from toolforgectl.core.errors import StepError
from toolforgectl.workflows.playbook import steps
from toolforgectl.workflows.playbook.context import StepContext
from toolforgectl.workflows.playbook.steps import Change, Check, Outcome


@dataclass(frozen=True, config=SECTION)
class FileOptions:
    name: StrictStr
    content: StrictStr = ""


def _dir(ctx: StepContext) -> Path:
    return Path(ctx.args["dir"])


def _log_rollback(ctx: StepContext) -> None:
    with (_dir(ctx) / "rollbacks.log").open("a") as log:
        log.write(f"{ctx.entry.id}\n")


@steps.register("demo-ready")
class Ready:
    """Ready unless the file `not-ready` exists."""

    def check(self, ctx: StepContext) -> Check:
        if (_dir(ctx) / "not-ready").exists():
            return Check(False, note="the file not-ready is there")
        return Check.already("ready")


@steps.register("demo-write", options=FileOptions)
class Write:
    """Write a file with some content."""

    def check(self, ctx: StepContext) -> Check:
        path = _dir(ctx) / ctx.options.name
        old = path.read_text() if path.exists() else None
        if old == ctx.options.content:
            return Check.already(f"{ctx.options.name} holds {old!r}")
        return Check.would(Change(ctx.options.name, old, ctx.options.content))

    def apply(self, ctx: StepContext) -> Outcome:
        path = _dir(ctx) / ctx.options.name
        old = path.read_text() if path.exists() else None
        path.write_text(ctx.options.content)
        ctx.record(ctx.options.name, old, ctx.options.content)
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        if (_dir(ctx) / ctx.options.name).read_text() != ctx.options.content:
            raise StepError("content differs")

    def rollback(self, ctx: StepContext) -> None:
        (_dir(ctx) / ctx.options.name).unlink(missing_ok=True)
        _log_rollback(ctx)


@steps.register("demo-gate", options=FileOptions)
class Gate:
    """Wait (within the step's timeout) until the test creates the file `name`."""

    def check(self, ctx: StepContext) -> Check:
        if (_dir(ctx) / f"{ctx.options.name}.passed").exists():
            return Check.already("passed")
        return Check.would(Change(f"{ctx.options.name}.passed", None, "passed"))

    def apply(self, ctx: StepContext) -> Outcome:
        (_dir(ctx) / f"{ctx.options.name}.waiting").write_text(str(ctx.run_id))
        ctx.wait((_dir(ctx) / ctx.options.name).exists, f"the file {ctx.options.name}")
        (_dir(ctx) / f"{ctx.options.name}.passed").write_text("passed")
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        if not (_dir(ctx) / f"{ctx.options.name}.passed").exists():
            raise StepError("not passed")

    def rollback(self, ctx: StepContext) -> None:
        (_dir(ctx) / f"{ctx.options.name}.passed").unlink(missing_ok=True)
        _log_rollback(ctx)


@steps.register("demo-fail")
class Fail:
    """Always fails in apply (after its check said there was work)."""

    def check(self, ctx: StepContext) -> Check:
        return Check.would(Change("nothing", None, "fail"))

    def apply(self, ctx: StepContext) -> Outcome:
        raise StepError("the demo step fails on purpose")

    def verify(self, ctx: StepContext) -> None:
        raise StepError("never verified")

    def rollback(self, ctx: StepContext) -> None:
        _log_rollback(ctx)

    def instructions(self, ctx: StepContext) -> str:
        return "nothing to undo for demo-fail"


@steps.register("demo-final", options=FileOptions)
class Final(Write):
    """A write that cannot be rolled back: past the point of no return."""

    rollback = None  # type: ignore[assignment]

    def instructions(self, ctx: StepContext) -> str:
        return f"remove {_dir(ctx) / ctx.options.name} by hand"


@dataclass(frozen=True, config=SECTION)
class FlakyOptions:
    name: StrictStr
    fail_times: StrictInt


@steps.register("demo-flaky", options=FlakyOptions)
class Flaky:
    """A write whose verify fails `fail_times` times before it holds (a replica catching up);
    each verify appends its monotonic time to `<name>.verifies`."""

    def check(self, ctx: StepContext) -> Check:
        if (_dir(ctx) / ctx.options.name).exists():
            return Check.already("written")
        return Check.would(Change(ctx.options.name, None, "x"))

    def apply(self, ctx: StepContext) -> Outcome:
        (_dir(ctx) / ctx.options.name).write_text("x")
        return Outcome()

    def verify(self, ctx: StepContext) -> None:
        log = _dir(ctx) / f"{ctx.options.name}.verifies"
        with log.open("a") as out:
            out.write(f"{time.monotonic()}\n")
        if len(log.read_text().splitlines()) <= ctx.options.fail_times:
            raise StepError("not there yet")

    def rollback(self, ctx: StepContext) -> None:
        (_dir(ctx) / ctx.options.name).unlink(missing_ok=True)
        _log_rollback(ctx)
