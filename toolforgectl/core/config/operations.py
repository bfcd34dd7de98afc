"""The `operations:` section of the fleet config: where playbook runs keep their state and audit,
where their one-line START/END records go, and how long their lock lives.

    operations:
      state_dir: /var/lib/toolforgectl/runs    # run state (for --resume) + one JSONL audit per run
      log: {file: /var/log/toolforgectl/sal.log}   # or {command: "dologmsg"}
      lock_ttl: 600                            # seconds; a live run renews it before every step

Every key is optional: runs go to ~/.local/state/toolforgectl/runs (or $XDG_STATE_HOME's), and
the START/END lines to `operations.log` in that directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from toolforgectl.core.config.schema import EMPTY_IS_DEFAULT, SECTION, Count, Text, invalid


@dataclass(frozen=True, config=SECTION)
class OperationsLog:
    """Where a run's one-line START/END records go: a file, or a command given the line as its last
    argument (such as a SAL/IRC logger); neither: `operations.log` in the state directory."""

    file: Text = ""
    command: Text = ""

    @model_validator(mode="after")
    def _one_place(self) -> OperationsLog:
        if self.file and self.command:
            raise invalid("takes `file` or `command`, not both")
        return self


@dataclass(frozen=True, config=SECTION)
class Operations:
    """Settings every playbook run shares."""

    state_dir: Text = ""  # empty: $XDG_STATE_HOME/toolforgectl/runs (~/.local/state/...)
    log: Annotated[OperationsLog, EMPTY_IS_DEFAULT] = Field(default_factory=OperationsLog)
    lock_ttl: Count = 600

    def runs(self) -> Path:
        """The directory of run state and audit files, `~` expanded."""
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        base = os.environ.get("XDG_STATE_HOME", "")
        root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
        return root / "toolforgectl" / "runs"
