"""The command lines the lab prints for a person to paste: absolute paths into this install.

A bare `toolforgectl` works only where the venv's bin/ is on $PATH; the lab prints the path of
the console script beside this Python instead (or `python -m` when it is not installed as one).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

# The module each console script runs, for an install without the scripts (e.g. PYTHONPATH).
_MODULES = {
    "toolforgectl": "toolforgectl",
    "webservice-runner": "toolforgectl.daemons.clients.webservice_runner",
    "webservice": "toolforgectl.daemons.clients.webservice",
}


def program(name: str) -> str:
    """How to run console script `name` from any shell: its absolute path, quoted for the shell."""
    # Not resolved: a venv's bin/python is a symlink to the system Python, outside the venv.
    script = Path(sys.executable).parent / name
    if script.is_file():
        return shlex.quote(str(script))
    return f"{python()} -m {_MODULES[name]}"


def python() -> str:
    """This Python (the venv's, which can import toolforgectl), quoted for the shell."""
    return shlex.quote(sys.executable)


def quote(path: Path | str) -> str:
    """A path or argument, quoted for the shell."""
    return shlex.quote(str(path))
