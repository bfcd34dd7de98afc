"""The local webservice backend's jobs: real process groups, stopped the way `lab down` stops them."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import wait_until
from toolforgectl.adapters.localjobs import LocalJobs
from toolforgectl.core.jobs import JobSpec

# A job that is slow to finish after SIGTERM, as a webservice-runner is while it retries its
# unregistration against a proxy whose Redis is down: it stays until every job of the test has had
# SIGTERM (each notes it in a file), or for at most 10 s. It writes down which of the two it was.
SLOW_TO_STOP = """
import signal, sys, time
from pathlib import Path

mine, everyone = Path(sys.argv[1]), [Path(arg) for arg in sys.argv[2 : sys.argv.index("--")]]

def stop(*_):
    mine.write_text("signalled")
    deadline = time.monotonic() + 10
    while not all(p.exists() for p in everyone) and time.monotonic() < deadline:
        time.sleep(0.05)
    mine.write_text("together" if all(p.exists() for p in everyone) else "alone")
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
Path(f"{mine}.up").touch()
while True:
    signal.pause()
"""


def test_stop_all_stops_every_job_at_once_so_slow_ones_do_not_add_up(tmp_path: Path) -> None:
    jobs = LocalJobs(tmp_path / "spool", stop_timeout=20)
    tools = ("one", "two", "three")
    signalled = [tmp_path / tool / "terminated" for tool in tools]
    for tool, mine in zip(tools, signalled, strict=True):
        mine.parent.mkdir()
        runner = (sys.executable, "-c", SLOW_TO_STOP, str(mine), *map(str, signalled))
        jobs.start(JobSpec(tool, "generic", str(mine.parent), ("server",), runner))
    wait_until(lambda: all(Path(f"{m}.up").exists() for m in signalled), "the three jobs to be up")

    stopped = jobs.stop_all()

    assert sorted(stopped) == ["generic-one", "generic-three", "generic-two"]
    assert jobs.jobs() == []
    assert list((tmp_path / "spool").glob("*.json")) == [], "stopped jobs are forgotten"
    # One after another, the first would have waited for the others' SIGTERM in vain.
    assert [marker.read_text() for marker in signalled] == ["together"] * 3
