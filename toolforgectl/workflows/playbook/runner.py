"""The playbook runner: what every operation gets, in this order.

    lock        taken on every proxy's Redis (a dry run only checks nobody holds it)
    preflight   every check-only step runs; any failure stops the run before anything changes
    plan        every step's check: "already done", or the changes it would make (with diffs)
    confirm     --yes, or `go` typed on a terminal; no terminal and no --yes: refused, never a hang
    act         per step: renew the lock, check again (a step already done is not applied),
                apply, verify (retried with backoff); the run state is saved around each
    undo        a failure (or Ctrl-C) before the point of no return: every step touched so far
                is rolled back, last first; past it: each touched step's operator instructions
    end         the lock released; START/END in the operations log; the JSONL audit complete

The runner never prints: the CLI gives it a UI (plan, progress, confirmation) and renders the
Report it returns. Errors that end a run are returned in `Report.error`, not raised, so the
caller can show the per-step table before ending on them.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from toolforgectl.adapters import oplog
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core.config import Fleet
from toolforgectl.core.errors import (
    LockHeldError,
    NotConfirmedError,
    PreflightError,
    StepError,
    ToolforgectlError,
    UsageError,
)
from toolforgectl.core.waiting import with_retries
from toolforgectl.workflows.playbook import state as runstate
from toolforgectl.workflows.playbook.context import Adapters, StepContext, reason_line
from toolforgectl.workflows.playbook.lock import FleetLock
from toolforgectl.workflows.playbook.report import UI, Report, Request, StepResult
from toolforgectl.workflows.playbook.spec import Entry
from toolforgectl.workflows.playbook.steps import Check

__all__ = ["UI", "Report", "Request", "StepResult", "run"]

EXIT_INTERRUPTED = 130


def run(fleet: Fleet, request: Request, ui: UI) -> Report:
    """Run `request` against `fleet`; the Report says how it went (see the module docstring)."""
    directory = fleet.operations.runs()
    if request.resume:
        files = runstate.files_of(directory, request.resume)
        saved = _resumable(files.load(), request)
    else:
        files = runstate.RunFiles(directory, runstate.new_run_id(request.playbook.name))
        saved = runstate.RunState(
            files.run,
            request.playbook.name,
            dict(request.args),
            request.by.actor,
            request.by.reason,
            request.by.task_id,
        )
    return _Run(fleet, request, ui, files, saved).execute()


def _resumable(saved: runstate.RunState, request: Request) -> runstate.RunState:
    """The saved state of the run to resume, checked against what the command line asks."""
    if saved.operation != request.playbook.name:
        raise UsageError(f"run {saved.run} is a {saved.operation} run, not {request.playbook.name}")
    if saved.args != dict(request.args):
        given = ", ".join(f"{key}={value!r}" for key, value in saved.args.items())
        raise UsageError(f"run {saved.run} was started with {given}; resume it with the same arguments")
    alive = saved.host == socket.gethostname() and saved.pid != os.getpid() and runstate.pid_alive(saved.pid)
    if saved.status == "running" and alive:
        raise LockHeldError(f"run {saved.run} is still running (pid {saved.pid} on {saved.host})")
    saved.host, saved.pid = socket.gethostname(), os.getpid()
    return saved


class _Run:
    """One execution of a playbook (a fresh run, or a resumed one)."""

    def __init__(
        self, fleet: Fleet, request: Request, ui: UI, files: runstate.RunFiles, saved: runstate.RunState
    ) -> None:
        self.fleet, self.request, self.ui, self.files, self.state = fleet, request, ui, files, saved
        self.playbook = request.playbook
        self.adapters = Adapters(fleet)
        self.report = Report(
            files.run, self.playbook.name, request.dry_run, bool(request.resume), files.audit
        )
        stores = {proxy.name: self._store(proxy.redis) for proxy in fleet.proxies}
        ttl = float(fleet.operations.lock_ttl)
        self.lock = FleetLock(stores, self.playbook.lock, files.run, request.by.actor, ttl)
        self.logged = False
        self.planned: dict[str, Check] = {}

    def _store(self, url: str) -> RouteStore:
        return self.adapters.get(f"store:{url}", lambda: RouteStore.from_url(url))

    # The phases ----------------------------------------------------------------------------

    def execute(self) -> Report:
        """Run every phase; any end (error, Ctrl-C) releases the lock and closes the audit."""
        self._audit_start()
        if self.state.status == "ok":
            self.report.result = "nothing to do"
            self.ui.note(f"run {self.state.run} finished already; nothing to resume")
            self.files.append("end", result=self.report.result, exit_code=0)
            return self.report
        try:
            self._execute()
        except ToolforgectlError as exc:
            self.report.error = exc
            if self.report.result == "running":
                self.report.result = "not confirmed" if isinstance(exc, NotConfirmedError) else "failed"
        except KeyboardInterrupt:
            self.report.interrupted, self.report.result = True, "interrupted"
            if self.state.status == "rolled-back":
                self.report.result = "rolled back"
        finally:
            for problem in self.lock.release():
                self.ui.note(f"warning: {problem}")
            self._end()
            self.adapters.close()
        return self.report

    def _execute(self) -> None:
        if self.request.dry_run:
            self.lock.check()
        else:
            self.lock.take()
        self._preflight()
        self._plan()
        self.ui.plan(self.report)
        if self.request.dry_run:
            self.report.result = "dry run"
            return
        if not self.report.planned:
            self.report.result = "nothing to do"
            self.state.status = "ok"
            self.files.save(self.state)
            return
        self._confirm()
        self.files.save(self.state)
        self._oplog("START", f"{self._summary()} (run {self.state.run}): {reason_line(self.request.by)}")
        self.logged = True
        self._act()
        self.report.result, self.state.status = "ok", "ok"

    def _preflight(self) -> None:
        failures = []
        for entry in self.playbook.preflight:
            if self.report.resumed and entry.skip_on_resume:
                self.report.preflight.append(StepResult(entry.id, entry.step, "skipped", "skipped on resume"))
                continue
            started = time.monotonic()
            try:
                found = entry.kind.make().check(self._ctx(entry))
                status, note, error = ("ok" if found.done else "failed"), found.note, ""
            except ToolforgectlError as exc:
                status, note, error = "failed", "", str(exc)
            result = StepResult(
                entry.id, entry.step, status, note, error=error, seconds=runstate.elapsed(started)
            )
            self.report.preflight.append(result)
            self.files.append("preflight", **result.as_dict())
            if status == "failed":
                failures.append(f"{entry.id}: {error or note or 'not ready'}")
        if failures:
            raise PreflightError(f"preflight failed, nothing was changed: {'; '.join(failures)}")

    def _plan(self) -> None:
        for entry in self.playbook.steps:
            try:
                found: Check = entry.kind.make().check(self._ctx(entry))
            except ToolforgectlError as exc:
                self.report.steps.append(StepResult(entry.id, entry.step, "failed", error=str(exc)))
                raise PreflightError(
                    f"step {entry.id} could not check the fleet, nothing was changed: {exc}"
                ) from None
            self.planned[entry.id] = found
            status = "already done" if found.done else "planned"
            result = StepResult(entry.id, entry.step, status, found.note, list(found.changes), found.diff)
            self.report.steps.append(result)
        self.files.append("plan", steps=[step.as_dict() for step in self.report.steps])

    def _confirm(self) -> None:
        count = len(self.report.planned)
        what = f"{count} step{'s' if count != 1 else ''} of {self.playbook.name} (run {self.state.run})"
        if self.request.yes:
            return
        if not self.request.interactive:
            raise NotConfirmedError(
                f"refusing to run {what} without confirmation: stdin is not a terminal;"
                " pass --yes (or --dry-run to see the plan only)"
            )
        if not self.ui.confirm(f"Run {what}?"):
            raise NotConfirmedError(f"not confirmed: {what} not run, nothing was changed")

    def _act(self) -> None:
        entries = self.playbook.steps
        for index, entry in enumerate(entries):
            for problem in self.lock.renew():
                self.ui.note(f"warning: {problem}")
            result = self.report.steps[index]
            started = time.monotonic()
            try:
                self._one(index, entry, result)
            except (ToolforgectlError, KeyboardInterrupt) as exc:
                result.status, result.error = "failed", str(exc) or "interrupted"
                result.seconds = runstate.elapsed(started)
                self._record(entry, result)
                self._undo(index)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise StepError(self._failure(entry, exc)) from None
            result.seconds = runstate.elapsed(started)
            self._record(entry, result)

    def _one(self, index: int, entry: Entry, result: StepResult) -> None:
        total, step, ctx = len(self.playbook.steps), entry.kind.make(), self._ctx(entry)
        saved = self.state.step(entry.id)
        self.ui.step(index, total, entry, "checking")
        found: Check = step.check(ctx)
        if found.done:
            result.status, result.note, result.changes = "already done", found.note, []
            saved.status = "done" if saved.touched else "already"  # touched: by the interrupted run
            return
        if entry.point_of_no_return:
            self.state.past_point_of_no_return = True
        saved.status, saved.touched = "applying", True
        self.files.save(self.state)
        self.ui.step(index, total, entry, "applying")
        try:
            outcome = step.apply(ctx)
        finally:
            saved.changes = [change.as_dict() for change in ctx.changes]
        result.changes = [*ctx.changes, *outcome.changes]
        result.note, result.diff = outcome.note or found.note, outcome.diff or found.diff
        saved.status, saved.changes = "applied", [change.as_dict() for change in result.changes]
        self.files.save(self.state)
        self.ui.step(index, total, entry, "verifying")
        with_retries(
            lambda: step.verify(ctx),
            tries=entry.retries + 1,
            delay=entry.delay,
            backoff=entry.backoff,
            on_retry=lambda attempt, error: self.ui.note(
                f"{entry.id}: verify attempt {attempt} failed ({error}); retrying"
            ),
        )
        result.status, saved.status = "done", "done"

    def _undo(self, failed: int) -> None:
        """After step `failed` failed: roll back (before the point of no return) or instruct."""
        entries = self.playbook.steps[: failed + 1]
        touched = [entry for entry in entries if self.state.step(entry.id).touched]
        if self.state.past_point_of_no_return:
            self.state.status = "failed"
            for entry in reversed(touched):
                if callable(getattr(entry.kind.cls, "instructions", None)):
                    text = entry.kind.make().instructions(self._ctx(entry))
                    self.report.instructions.append(f"{entry.id}: {text}")
            self.files.append("instructions", instructions=self.report.instructions)
            return
        problems = []
        for entry in reversed(touched):
            saved = self.state.step(entry.id)
            if saved.status == "rolled-back":
                continue
            index = self.playbook.steps.index(entry)
            self.ui.step(index, len(self.playbook.steps), entry, "rolling back")
            try:
                entry.kind.make().rollback(self._ctx(entry))
            except ToolforgectlError as exc:
                problems.append(f"{entry.id}: {exc}")
                self.files.append("rollback", id=entry.id, result="failed", error=str(exc))
                continue
            saved.status = "rolled-back"
            if self.report.steps[index].status != "failed":
                self.report.steps[index].status = "rolled back"
            self.files.append("rollback", id=entry.id, result="rolled back")
        self.state.status = "failed" if problems else "rolled-back"
        self.report.result = "failed" if problems else "rolled back"
        if problems:
            self.report.instructions.append("rollback failed for " + "; ".join(problems))
        self.files.save(self.state)

    def _failure(self, entry: Entry, exc: BaseException) -> str:
        head = f"run {self.state.run}: step {entry.id} failed: {exc}"
        if self.state.past_point_of_no_return:
            return (
                f"{head}; past the point of no return: follow the instructions above, or fix the cause"
                f" and continue with --resume {self.state.run}"
            )
        if self.state.status == "rolled-back":
            return f"{head}; rolled back, nothing is left changed"
        return f"{head}; rollback incomplete: {' '.join(self.report.instructions)}"

    # Bookkeeping ---------------------------------------------------------------------------

    def _ctx(self, entry: Entry) -> StepContext:
        return StepContext(
            fleet=self.fleet,
            entry=entry,
            args=self.request.args,
            run_id=self.state.run,
            by=self.request.by,
            dry_run=self.request.dry_run,
            resumed=self.report.resumed,
            adapters=self.adapters,
            progress=self.ui.note,
            planned=self.planned.get(entry.id),
        )

    def _record(self, entry: Entry, result: StepResult) -> None:
        if not self.request.dry_run:
            self.state.step(entry.id).error = result.error
            self.files.save(self.state)
        self.files.append("step", **result.as_dict())

    def _audit_start(self) -> None:
        request = self.request
        self.files.append(
            "resume" if request.resume else "start",
            operation=self.playbook.name,
            playbook=str(self.playbook.path),
            args=request.args,
            actor=request.by.actor,
            reason=request.by.reason,
            task_id=request.by.task_id,
            dry_run=request.dry_run,
            argv=list(request.argv),
            host=socket.gethostname(),
            pid=os.getpid(),
        )

    def _end(self) -> None:
        report = self.report
        code = EXIT_INTERRUPTED if report.interrupted else (report.error.exit_code if report.error else 0)
        if not self.request.dry_run and self.state.status == "running":
            self.state.status = "interrupted" if report.interrupted else "failed"
        if not self.request.dry_run and self.files.state.exists():
            self.files.save(self.state)
        self.files.append("end", result=report.result, exit_code=code, error=str(report.error or ""))
        if self.logged:
            verdict = {"ok": "PASS", "rolled back": "ROLLED BACK", "interrupted": "INTERRUPTED"}
            why = reason_line(self.request.by)
            text = f"{self.playbook.name} (exit_code={code}) (run {self.state.run}): {why}"
            self._oplog(f"END ({verdict.get(report.result, 'FAIL')})", text)

    def _summary(self) -> str:
        args = " ".join(f"{key}={value}" for key, value in self.request.args.items())
        return f"{self.playbook.name} {args}".strip()

    def _oplog(self, head: str, text: str) -> None:
        """One START/END line where `operations.log` says (a file, or a command)."""
        line = f"{head} - toolforgectl {text}"
        log = self.fleet.operations.log
        problem = (
            oplog.send(log.command, line)
            if log.command
            else oplog.append(
                Path(log.file).expanduser() if log.file else self.files.directory / "operations.log", line
            )
        )
        if problem:
            self.ui.note(f"warning: {problem}")
