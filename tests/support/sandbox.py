"""Running a daemon under what of its rendered unit's sandbox a process can put on itself.

The test machines have no systemd as PID 1 to start the units. What the kernel lets a process
apply to itself before exec'ing the daemon, it gets here, read from the rendered unit (so a unit
that takes a capability away is tested without it): `NoNewPrivileges=` and `CapabilityBoundingSet=`
through setpriv(1), `MemoryDenyWriteExecute=` through prctl(PR_SET_MDWE) (Linux 6.3; systemd uses
the same when the kernel has it). Not applied: the file system, namespace and system call rules,
which need systemd (or root and a mount namespace) to set up.
"""

from __future__ import annotations

import configparser
import os
import shutil
import sys
from functools import cache
from pathlib import Path

from toolforgectl.adapters.render import render_units
from toolforgectl.core.config import Fleet, Proxy

# Exec the rest of argv with PR_SET_MDWE(PR_MDWE_REFUSE_EXEC_GAIN) on: no mapping may become
# both writable and executable, in this process and everything it starts (kept across exec).
_REFUSE_EXEC_GAIN = """
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    why = os.strerror(ctypes.get_errno())
    sys.exit(f"prctl(PR_SET_MDWE): {why}: MemoryDenyWriteExecute= needs Linux 6.3")
os.execv(sys.argv[1], sys.argv[1:])
"""


@cache
def service(name: str) -> dict[str, str]:
    """The [Service] section of unit `name` as `render units` renders it for this virtualenv."""
    units = render_units(Fleet(proxies=(Proxy(name="proxy-01"),)), Path(sys.prefix) / "bin")
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(units[f"systemd/system/{name}"])
    return dict(parser["Service"])


def confined(unit: str) -> list[str]:
    """A command prefix that runs a program under `unit`'s rules named in the module docstring."""
    rules = service(unit)
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv is missing: install Debian's util-linux"
    prefix = [setpriv]
    if rules.get("NoNewPrivileges") == "yes":
        prefix.append("--nnp")
    if "CapabilityBoundingSet" in rules and os.geteuid() == 0:  # others have no capability to drop
        kept = [cap.removeprefix("CAP_").lower() for cap in rules["CapabilityBoundingSet"].split()]
        prefix.append("--bounding-set=" + ",".join(["-all", *(f"+{cap}" for cap in kept)]))
    if rules.get("MemoryDenyWriteExecute") == "yes":
        prefix += [sys.executable, "-c", _REFUSE_EXEC_GAIN]
    return prefix


def bounding_set(pid: int) -> int:
    """The capability bounding set of process `pid`, as a bit mask."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapBnd:")), 16)
