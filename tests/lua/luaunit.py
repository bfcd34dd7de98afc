"""Running a Lua unit test file (tests/lua/unit/test_*.lua) under lua5.1 with the `ngx` shim."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

UNIT = REPO / "tests" / "lua" / "unit"


@dataclass
class LuaRun:
    """What the runner reported: the TAP plan, the lines of passed and failed cases, and stderr."""

    planned: int
    passed: list[str]
    failed: list[str]
    returncode: int
    stderr: str

    def report(self) -> str:
        """The failed cases (with their tracebacks), or stderr when the file did not even run."""
        return "\n".join(self.failed) or self.stderr or f"exit status {self.returncode}"


def run(lua_file: Path, root: Path = REPO) -> LuaRun:
    """Run every case of `lua_file` against `root`'s lua/ tree and fixtures."""
    done = subprocess.run(
        ["lua5.1", str(UNIT / "runner.lua"), str(root), str(lua_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    plan = next((line for line in lines if line.startswith("1..")), "1..0")
    failed: list[str] = []
    for line in lines:
        if line.startswith("not ok"):
            failed.append(line)
        elif line.startswith("# ") and failed:
            failed[-1] += "\n" + line
    return LuaRun(
        planned=int(plan[3:]),
        passed=[line for line in lines if line.startswith("ok ")],
        failed=failed,
        returncode=done.returncode,
        stderr=done.stderr,
    )
