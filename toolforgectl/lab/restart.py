"""`python -m toolforgectl.lab.restart --dir DIR --proxy NAME proxylistener`: restart one daemon of a
lab proxy, as `systemctl restart proxylistener` does on a proxy VM.

Converge runs it (the lab's `remote.converge.proxies.restart`) after it pushed a changed data
plane: the fleet may have gained or lost a proxy, and a proxylistener knows the fleet it read when
it started (it forwards a registration to the active proxy's Redis, found in that fleet).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from toolforgectl.core import config
from toolforgectl.core.errors import LabError
from toolforgectl.lab import fleet as lab
from toolforgectl.lab.plan import Member
from toolforgectl.lab.state import LabState, changing, load

ROLES = ("proxylistener",)


def restart(directory: Path, proxy: str, role: str) -> None:
    """Stop `proxy`'s `role` process wherever the lab recorded it (`lab up`'s, or a VM's), start it again."""
    for where in (directory, directory / lab.VMS / proxy):
        with changing(where):
            if _restarted(where, directory, proxy, role):
                return
    raise LabError(f"the lab in {directory} runs no {role} for {proxy}")


def _restarted(where: Path, directory: Path, proxy: str, role: str) -> bool:
    state = load(where)
    found = [r for r in state.processes if r.proxy == proxy and r.role == role] if state else []
    if state is None or not found:
        return False
    for record in found:
        record.stop()
        state.processes.remove(record)
    _start(state, directory, proxy)
    return True


def _start(state: LabState, directory: Path, proxy: str) -> None:
    fleet = config.load(directory / "fleet.yaml")
    member = Member(proxy, fleet.proxy(proxy).address)
    state.proxies.setdefault(proxy, {})
    lab.start_listener(state, directory, member, fleet, lambda _line: None)


def main(argv: list[str] | None = None) -> None:
    """The command line above."""
    parser = argparse.ArgumentParser(prog="python -m toolforgectl.lab.restart", description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="the lab's directory")
    parser.add_argument("--proxy", required=True, help="the proxy whose daemon to restart")
    parser.add_argument("role", choices=ROLES)
    args = parser.parse_args(argv)
    restart(args.dir, args.proxy, args.role)


if __name__ == "__main__":
    main()
