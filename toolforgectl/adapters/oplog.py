"""The operations log: one line per run START and END, appended to a file or handed to a command
(a SAL/IRC logger such as `dologmsg`, which gets the line as its last argument)."""

from __future__ import annotations

import os
import shlex
import subprocess
from datetime import UTC, datetime
from pathlib import Path

COMMAND_TIMEOUT = 30.0


def append(path: Path, line: str) -> str | None:
    """Append `line` (with the UTC time in front) to `path`; the problem, if any, as a sentence."""
    stamped = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {line}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: two runs logging at once never interleave inside a line.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, stamped.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as exc:
        return f"could not append to the operations log {path}: {exc.strerror}"
    return None


def send(command: str, line: str) -> str | None:
    """Run `command` with `line` as its last argument; the problem, if any, as a sentence.

    A logger that is down must not stop an operation (the JSONL audit has it all), so a failure
    here is reported, not raised.
    """
    argv = [*shlex.split(command), line]
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the operations log command {argv[0]!r} failed: {exc}"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        return f"the operations log command {argv[0]!r} exited {done.returncode}: {said[0]}"
    return None
