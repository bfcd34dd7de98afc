"""Ctrl-C ends a command like any other error: one line, exit 130, and the envelope with --json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import wait_until


def reading_stdin(pid: int) -> bool:
    """Whether the process sits in read(0, ...): read is syscall 0 on x86-64, 63 on arm64."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    return fields[:1] in (["0"], ["63"]) and fields[1:2] == ["0x0"]


@contextmanager
def ctrl_c_handled() -> Iterator[None]:
    """Start children with Ctrl-C handled as a terminal's shell starts them.

    A test run started in the background (nohup, `cmd &` in a script, some CI agents) inherits
    SIGINT as ignored, passes that on, and Python keeps it ignored: the CLI would never see the
    signal this test sends. A handled signal becomes the default one in a child at exec."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_is_one_line_and_exit_130_with_the_envelope() -> None:
    env = {**os.environ, "TOOLFORGECTL_CONFIG": "/nonexistent/toolforgectl.yaml"}
    argv = [sys.executable, "-m", "toolforgectl", "--redis", "redis://127.0.0.1:1/0", "routes", "import", "-"]
    with ctrl_c_handled():
        cli = subprocess.Popen(
            [*argv, "--json"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    try:
        wait_until(lambda: reading_stdin(cli.pid), "the CLI to wait for the export on stdin")
        cli.send_signal(signal.SIGINT)  # what Ctrl-C sends
        # Not communicate(): it closes stdin, and an EOF that beats the signal ends the read first.
        cli.wait(timeout=30)
        assert cli.stdout is not None and cli.stderr is not None
        out, err = cli.stdout.read(), cli.stderr.read()
    finally:
        cli.kill()
    assert cli.returncode == 130
    assert err == "toolforgectl: error: interrupted\n"
    assert json.loads(out) == {
        "command": "routes import",
        "ok": False,
        "error": {"kind": "interrupted", "message": "interrupted"},
    }
