"""Start-up imports only what the answer needs: `--help`, `--version` and TAB completion run on
every keystroke an operator makes, so they must not load Redis, jinja2, Kubernetes or the lab.

Time itself is measured by bench/cli.py (docs/benchmarks.md); this pins the structure that
keeps it short, which a slow, shared test machine cannot blur.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# What each of these costs at start-up (python -X importtime): tens of milliseconds each.
HEAVY = ("redis", "jinja2", "kubernetes", "yaml", "toolforgectl.lab", "toolforgectl.adapters.routestore")

# Runs the real entry point, then lists what it imported, even though main() ends in sys.exit.
PROBE = """
import atexit, json, sys
path, sys.argv = sys.argv[1], ["toolforgectl", *sys.argv[2:]]
atexit.register(lambda: open(path, "w").write(json.dumps(sorted(sys.modules))))
from toolforgectl.cli.app import main
main()
"""


def loaded_by(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, code: int = 0
) -> tuple[set[str], str]:
    """The modules `toolforgectl ARGS` imported, and what it printed on stdout."""
    modules = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(modules), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stderr
    return set(json.loads(modules.read_text())), done.stdout


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m in HEAVY or m.startswith(tuple(f"{h}." for h in HEAVY)))


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("--version",),
        ("routes", "--help"),
        ("lab", "--help"),
        ("hiera", "--help"),
        ("playbooks", "--help"),
    ],
)
def test_help_and_version_load_no_client_library(tmp_path: Path, args: tuple[str, ...]) -> None:
    modules, printed = loaded_by(tmp_path, *args)
    assert printed.strip(), "it answered"
    assert heavy(modules) == []


def test_tab_completion_loads_no_client_library(tmp_path: Path) -> None:
    completion = {
        "_TOOLFORGECTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "toolforgectl routes ",
        "COMP_CWORD": "2",
    }
    modules, printed = loaded_by(tmp_path, env=completion)
    assert {"list", "show", "set"} <= set(printed.split()), "it completed the routes commands"
    assert heavy(modules) == []


def test_a_command_still_loads_what_it_needs(tmp_path: Path) -> None:
    """The counter-check: the probe sees imports that commands make when they run."""
    modules, _ = loaded_by(tmp_path, "--redis", "redis://127.0.0.1:1/0", "routes", "list", code=3)
    assert "redis" in modules
