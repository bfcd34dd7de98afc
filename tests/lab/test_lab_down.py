"""`lab down` leaves nothing behind: every process a lab process started goes with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli, wait_until

SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def group(pgid: int) -> set[int]:
    """The live (not zombie) processes of group `pgid`, read from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.add(int(stat.parent.name))
    return found


def ignores_sigterm(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(ignored.split()[1], 16) & SIGTERM_BIT)


def lab_up(lab: Path, *sample_args: str) -> subprocess.CompletedProcess[str]:
    """`lab up` with one sample tool, whose command line gets `sample_args`, as its own process."""
    script = (
        "import sys; from pathlib import Path; from toolforgectl.lab import fleet; "
        "fleet.up(Path(sys.argv[1]), tools=('hello',), sample_args=tuple(sys.argv[2:]))"
    )
    argv = [sys.executable, "-c", script, str(lab), *sample_args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def tool_group(lab: Path) -> int:
    state = json.loads((lab / "lab.json").read_text())
    pgid = next(p["pgid"] for p in state["processes"] if p["role"] == "tool")
    assert isinstance(pgid, int)
    return pgid


def test_lab_down_kills_a_child_of_a_sample_tool_that_ignores_sigterm(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    up = lab_up(lab, "--stubborn-child")
    try:
        assert up.returncode == 0, up.stderr
        pgid = tool_group(lab)
        stubborn = wait_until(
            lambda: [pid for pid in group(pgid) if ignores_sigterm(pid)], "the child that ignores SIGTERM"
        )
        assert len(group(pgid)) == 3, "the runner, the sample tool and its stubborn child"
    finally:
        down = run_cli("lab", "down", "--dir", str(lab))

    assert down.code == 0, down.stderr
    assert group(pgid) == set(), f"left behind: {stubborn}"


def test_lab_down_stops_the_server_of_a_runner_that_was_sigkilled(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    up = lab_up(lab)
    try:
        assert up.returncode == 0, up.stderr
        pgid = tool_group(lab)
        os.kill(pgid, signal.SIGKILL)  # the runner: its server, orphaned, keeps running
        wait_until(lambda: pgid not in group(pgid), "the runner to die")
        assert len(group(pgid)) == 1, "the sample tool outlived its runner"
        again = run_cli("lab", "up", "--dir", str(lab))
        assert again.code == 1 and "lab down" in again.stderr, "what is left still counts as a lab"
    finally:
        down = run_cli("lab", "down", "--dir", str(lab))

    assert down.code == 0, down.stderr
    assert group(pgid) == set()
