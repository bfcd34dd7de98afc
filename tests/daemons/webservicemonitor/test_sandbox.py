"""webservicemonitor still restarts tools under its unit's sandbox (what of it
tests/support/sandbox.py can apply without systemd: its four capabilities only, no new privileges,
no memory both writable and executable)."""

from __future__ import annotations

import os
import signal

from tests.conftest import wait_until
from tests.daemons.webservicemonitor.conftest import Fleet, events
from tests.daemons.webservicemonitor.test_monitor import _start_demo
from tests.support.sandbox import bounding_set, confined
from toolforgectl.adapters.localjobs import LocalJobs

# CAP_CHOWN (0), CAP_DAC_OVERRIDE (1), CAP_SETGID (6), CAP_SETUID (7): what its unit keeps.
MONITOR_CAPS = 1 << 0 | 1 << 1 | 1 << 6 | 1 << 7


def test_a_dead_tool_is_restarted_by_the_monitor_in_its_sandbox(lab_fleet: Fleet) -> None:
    _start_demo(lab_fleet)
    spool = LocalJobs(lab_fleet.tmp / "spool")
    os.killpg(int(spool.jobs()[0].number), signal.SIGKILL)
    wait_until(lambda: not spool.jobs(), "the job to be gone")

    done = lab_fleet.monitor_once(wrapper=confined("webservicemonitor.service"))

    assert done.returncode == 0, done.stderr
    assert [e["tool"] for e in events(done.stderr) if e["message"] == "restarted"] == ["demo"]
    assert any("restart done" in line for line in lab_fleet.service_log("demo"))
    restarted = wait_until(spool.jobs, "the restarted job")[0]
    # What a restart starts runs under the monitor's rules: none of the capabilities it lacks.
    assert bounding_set(int(restarted.number)) & ~MONITOR_CAPS == 0 or os.geteuid() != 0
