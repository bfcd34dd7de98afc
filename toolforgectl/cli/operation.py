"""What every command that runs a playbook shares: its options, the terminal UI, the final table.

A command (`hiera set`, later `failover`, `active-proxy set`) parses its own arguments, then calls
`run_playbook`; the runner (workflows/playbook) does the rest. Progress and the plan go to stderr;
the final per-step table (or the `--json` envelope) to stdout.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolforgectl.core import output

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

    from toolforgectl.core.config import Fleet
    from toolforgectl.workflows.playbook.report import Report, StepResult
    from toolforgectl.workflows.playbook.spec import Entry

YesOpt = Annotated[
    bool,
    typer.Option(
        "--yes", "-y", help="Do not ask for confirmation (for automation); needed without a terminal."
    ),
]
ResumeOpt = Annotated[
    str | None,
    typer.Option("--resume", metavar="RUN", help="Continue an interrupted run; every step is checked again."),
]
PlanDryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Run the checks and show the plan; change nothing.")
]


class TerminalUI:
    """The runner's UI on stderr: the plan, one line per step phase (with a spinner on a terminal
    while a step works), and the `go` prompt."""

    def __init__(self) -> None:
        self._status: Status | None = None

    def plan(self, report: Report) -> None:
        """Show what each step found and would change, with diffs."""
        self._quiet()
        err = output.console(stderr=True)
        mode = "dry run: " if report.dry_run else ""
        err.print(f"{mode}plan of {report.operation} (run {report.run}):", markup=False, highlight=False)
        for step in report.steps:
            err.print(f"  {step.id}: {step.status}: {step.note}".rstrip(": "), markup=False, highlight=False)
            for line in step.diff.splitlines():
                err.print(f"      {line}", markup=False, highlight=False)

    def confirm(self, question: str) -> bool:
        """Ask on the terminal: only `go` proceeds (Spicerack's convention)."""
        self._quiet()
        output.console(stderr=True).print(f"{question} Type 'go' to proceed: ", end="", markup=False)
        try:
            answer = input()
        except EOFError:
            return False
        return answer.strip() == "go"

    def step(self, index: int, total: int, entry: Entry, phase: str) -> None:
        """One progress line per step phase; on a terminal, a spinner until the next one."""
        self._quiet()
        line = f"[{index + 1}/{total}] {entry.id}: {phase}"
        output.progress(line)
        err = output.console(stderr=True)
        if err.is_terminal and phase in ("applying", "verifying", "rolling back"):
            self._status = err.status(line)
            self._status.start()

    def note(self, line: str) -> None:
        """A warning or a retry, as it happens."""
        output.progress(line)

    def close(self) -> None:
        """Stop the spinner, if one turns."""
        self._quiet()

    def _quiet(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def run_playbook(
    fleet: Fleet,
    name: str,
    args: dict[str, Any],
    *,
    command: str,
    dry_run: bool,
    yes: bool,
    resume: str | None,
    reason: str | None,
    task_id: str | None,
    as_json: bool,
    where: Path | None = None,
    recap: Callable[[Console, Report], None] | None = None,
) -> None:
    """Run playbook `name` (from `where`, default playbooks/) with `args`; print the per-step
    table (or JSON), then `recap` (an operation's own summary, such as converge's per host), and
    end on the run's error if it has one."""
    from toolforgectl.workflows import attribution
    from toolforgectl.workflows.playbook import runner, spec

    request = runner.Request(
        playbook=spec.find(name, where),
        args=args,
        by=attribution.operator(reason, task_id),
        dry_run=dry_run,
        yes=yes,
        resume=resume,
        interactive=sys.stdin.isatty(),
        argv=tuple(sys.argv),
    )
    ui = TerminalUI()
    try:
        with _sigterm_as_interrupt():
            report = runner.run(fleet, request, ui)
    finally:
        ui.close()
    failed = report.error is not None or report.interrupted
    if as_json and not failed:
        output.emit(command, report.as_dict(), as_json=True, human=_table(report))
    elif not as_json and (report.steps or report.preflight):
        _table(report)(output.console())
    if recap is not None and not as_json:
        recap(output.console(), report)
    for line in report.instructions:
        output.progress(f"operator instructions: {line}")
    output.progress(f"run {report.run}: {report.result} (audit: {report.audit})")
    if report.interrupted:
        raise KeyboardInterrupt
    if report.error is not None:
        raise report.error


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (systemd, a CI job cancelled, `kill`) ends a run as Ctrl-C does: rolled back where
    it can be, the lock released, the audit closed; only SIGKILL leaves a run for --resume."""

    def interrupt(signum: int, frame: object) -> None:
        del signum, frame
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _table(report: Report) -> Callable[[Console], None]:
    def human(console: Console) -> None:
        rows = [
            (
                step.id,
                output.styled(step.status, _STYLE.get(step.status, "")),
                _what(step),
                f"{step.seconds:g}s",
            )
            for step in [*report.preflight, *report.steps]
        ]
        output.table(
            console, ("step", "result", "changes", "time"), rows, title=f"{report.operation}: {report.result}"
        )

    return human


def _what(step: StepResult) -> str:
    if step.error:
        return step.error
    if len(step.changes) > _SHOWN_CHANGES:
        more = len(step.changes) - _SHOWN_CHANGES
        return "; ".join(str(change) for change in step.changes[:_SHOWN_CHANGES]) + f"; and {more} more"
    if step.changes:
        return "; ".join(str(change) for change in step.changes)
    return step.note


_SHOWN_CHANGES = 3  # a step that changed many hosts: its own recap lists them all
_STYLE = {
    "ok": "green",
    "done": "green",
    "already done": "green",
    "planned": "yellow",
    "failed": "red",
    "rolled back": "yellow",
}
