"""The local webservice backend's jobs: real process groups, stopped the way `lab down` stops them."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import wait_until
from toolforgectl.adapters.localjobs import LocalJobs
from toolforgectl.core.jobs import JobSpec

# A job that needs a few seconds to finish after SIGTERM, as a webservice-runner does while it
# retries its unregistration against a proxy whose Redis is down. It notes when SIGTERM came.
SLOW_TO_STOP = """
import signal, sys, time
from pathlib import Path

def stop(*_):
    Path(sys.argv[1]).write_text(repr(time.time()))
    time.sleep(3)
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
Path(sys.argv[1] + ".up").touch()
while True:
    time.sleep(1)
"""


def test_stop_all_stops_every_job_at_once_so_slow_ones_do_not_add_up(tmp_path: Path) -> None:
    jobs = LocalJobs(tmp_path / "spool", stop_timeout=20)
    signalled = []
    for tool in ("one", "two", "three"):
        home = tmp_path / tool
        home.mkdir()
        signalled.append(home / "terminated")
        runner = (sys.executable, "-c", SLOW_TO_STOP, str(signalled[-1]))
        jobs.start(JobSpec(tool, "generic", str(home), ("server",), runner))
    wait_until(lambda: all(Path(f"{m}.up").exists() for m in signalled), "the three jobs to be up")

    stopped = jobs.stop_all()

    assert sorted(stopped) == ["generic-one", "generic-three", "generic-two"]
    assert jobs.jobs() == []
    assert list((tmp_path / "spool").glob("*.json")) == [], "stopped jobs are forgotten"
    # One after another, each would have had SIGTERM only once the previous one had finished (3 s).
    when = [float(marker.read_text()) for marker in signalled]
    assert max(when) - min(when) < 2.0, when
