"""A run's persisted state and its JSONL audit, both in `operations.state_dir`.

    <state_dir>/<run id>.json    the state --resume continues from (rewritten atomically)
    <state_dir>/<run id>.jsonl   the audit: one JSON object per line, appended as the run goes

The state is a checkpoint, never trusted on its own: a resumed run re-runs every step's check
against the real state. What it is trusted for: the arguments, who started the run, and whether
the point of no return was passed (which decides between rollback and operator instructions).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolforgectl.core.errors import NotFoundError, UsageError

_RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[a-z0-9-]+-[0-9a-f]{4}")


def new_run_id(operation: str) -> str:
    """`20261202T014501Z-hiera-set-9f3a`: sortable by time, names the operation, unique."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{operation}-{secrets.token_hex(2)}"


def now() -> str:
    """The time as the audit and the state write it (UTC, ISO 8601)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class StepState:
    """What the run did to one step so far."""

    status: str = "pending"  # pending, applying, applied, done, already, failed, rolled-back
    touched: bool = False  # apply was entered (by this run, or before it was interrupted)
    changes: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


@dataclass
class RunState:
    """Everything --resume needs, and what `hiera set --resume` checks its arguments against."""

    run: str
    operation: str
    args: dict[str, Any]
    actor: str
    reason: str
    task_id: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started: str = field(default_factory=now)
    status: str = "running"  # running, ok, failed, rolled-back, interrupted
    past_point_of_no_return: bool = False
    steps: dict[str, StepState] = field(default_factory=dict)

    def step(self, step_id: str) -> StepState:
        """The state of step `step_id` (pending until the run touches it)."""
        return self.steps.setdefault(step_id, StepState())


@dataclass
class RunFiles:
    """Where one run's state and audit live."""

    directory: Path
    run: str

    @property
    def state(self) -> Path:
        """The state file (JSON)."""
        return self.directory / f"{self.run}.json"

    @property
    def audit(self) -> Path:
        """The audit file (JSONL)."""
        return self.directory / f"{self.run}.jsonl"

    def save(self, state: RunState) -> None:
        """Write `state` atomically (a SIGKILL leaves the old or the new file, never half of one)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        text = json.dumps(asdict(state), indent=1, sort_keys=True, default=str)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{self.run}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.state)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self) -> RunState:
        """The saved state of this run; NotFoundError when there is none."""
        try:
            raw = json.loads(self.state.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(f"no run {self.run!r} in {self.directory} (nothing to resume)") from None
        steps = {key: StepState(**value) for key, value in raw.pop("steps", {}).items()}
        return RunState(**raw, steps=steps)

    def append(self, event: str, **fields: Any) -> None:
        """One audit record: `{"time", "run", "event", ...fields}` as one line, flushed at once."""
        self.directory.mkdir(parents=True, exist_ok=True)
        record = {"time": now(), "run": self.run, "event": event, **fields}
        with self.audit.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            out.flush()
            os.fsync(out.fileno())


def files_of(directory: Path, run: str) -> RunFiles:
    """The files of run `run` (as given to --resume: checked, so it cannot name another path)."""
    if not _RUN_ID.fullmatch(run):
        raise UsageError(f"{run!r} is not a run id (such as 20261202T014501Z-hiera-set-9f3a)")
    return RunFiles(directory, run)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def elapsed(since: float) -> float:
    """Seconds since the monotonic time `since`, rounded for people."""
    return round(time.monotonic() - since, 3)
