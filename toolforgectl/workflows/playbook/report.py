"""What a run is asked to do (Request), what it reports (Report, one StepResult per step), and
the UI it talks to the operator through; the runner fills them in, the CLI renders them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from toolforgectl.core.errors import ToolforgectlError
from toolforgectl.core.models import Attribution
from toolforgectl.workflows.playbook.spec import Entry, Playbook
from toolforgectl.workflows.playbook.steps import Change


@dataclass(frozen=True)
class Request:
    """One run as the command line asked for it."""

    playbook: Playbook
    args: dict[str, Any]
    by: Attribution
    dry_run: bool = False
    yes: bool = False
    resume: str | None = None
    interactive: bool = False  # stdin is a terminal: the runner may ask
    argv: tuple[str, ...] = ()


@dataclass
class StepResult:
    """One step's line in the plan and in the final table."""

    id: str
    step: str
    status: str  # ok, failed, skipped (preflight); planned, already done, done, failed, rolled back, not run
    note: str = ""
    changes: list[Change] = field(default_factory=list)
    diff: str = ""
    error: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (`--json`, the audit)."""
        return {
            "id": self.id,
            "step": self.step,
            "status": self.status,
            "note": self.note,
            "changes": [change.as_dict() for change in self.changes],
            "diff": self.diff,
            "error": self.error,
            "seconds": self.seconds,
        }


@dataclass
class Report:
    """What a run did: the rows of the final table, its outcome, and where its audit is."""

    run: str
    operation: str
    dry_run: bool
    resumed: bool
    audit: Path
    result: str = "running"  # ok, nothing to do, dry run, failed, rolled back, interrupted
    preflight: list[StepResult] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    error: ToolforgectlError | None = None
    interrupted: bool = False

    @property
    def planned(self) -> list[StepResult]:
        """The steps that would change something."""
        return [step for step in self.steps if step.status == "planned"]

    def as_dict(self) -> dict[str, Any]:
        """The `--json` data of a run."""
        return {
            "run": self.run,
            "operation": self.operation,
            "dry_run": self.dry_run,
            "resumed": self.resumed,
            "result": self.result,
            "audit": str(self.audit),
            "preflight": [step.as_dict() for step in self.preflight],
            "steps": [step.as_dict() for step in self.steps],
            "instructions": self.instructions,
        }


class UI(Protocol):
    """How the runner talks to the operator (the CLI implements it; tests may too)."""

    def plan(self, report: Report) -> None:
        """Show the plan (the report's steps as checked) before anything changes."""

    def confirm(self, question: str) -> bool:
        """Ask on the terminal; True only for an explicit yes."""

    def step(self, index: int, total: int, entry: Entry, phase: str) -> None:
        """A step enters `phase` (checking, applying, verifying, rolling back)."""

    def note(self, line: str) -> None:
        """A line of progress or a warning."""
