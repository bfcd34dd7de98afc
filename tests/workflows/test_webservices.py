"""What the monitor decides per tool, and its restart history on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolforgectl.core.jobs import Job
from toolforgectl.core.manifest import Manifest
from toolforgectl.workflows.restarthistory import RestartHistory
from toolforgectl.workflows.webservices import Found, Survey, decide

GRID = Manifest({"version": 4, "web": "lighttpd"})  # backend absent: gridengine


def _decide(
    state: str | None, routed: set[str] | None, wanted: Manifest = GRID, history: RestartHistory | None = None
) -> str:
    jobs = {} if state is None else {"lighttpd-t": Job("1", "lighttpd-t", "tools.t", state)}
    seen = Survey([Found("t", wanted)], {"gridengine": jobs}, routed)
    return decide(seen, history, now=1000.0)[0].action


@pytest.mark.parametrize(
    ("state", "routed", "action"),
    [
        ("r", {"t"}, "ok"),
        ("qw", {"t"}, "ok"),  # queued: restarting would not make it serve sooner
        ("Eqw", {"t"}, "restart"),  # the original never restarted an errored job
        ("dr", {"t"}, "restart"),
        (None, {"t"}, "restart"),
        ("r", set(), "restart"),  # running but unrouted: the restart registers it again
        ("r", None, "ok"),  # /list unknown: a missing route proves nothing
        (None, None, "restart"),  # /list unknown, but the job is certainly down
    ],
)
def test_what_the_monitor_does_by_job_state_and_route(
    state: str | None, routed: set[str] | None, action: str
) -> None:
    assert _decide(state, routed) == action


def test_no_web_key_means_nothing_is_wanted() -> None:
    assert _decide(None, set(), Manifest({"version": 4})) == "none"


def test_kubernetes_webservices_are_left_to_kubernetes() -> None:
    assert _decide(None, set(), Manifest({"web": "python3.11", "backend": "kubernetes"})) == "skip"


def test_a_backend_that_cannot_be_listed_restarts_nothing() -> None:
    seen = Survey([Found("t", GRID)], {"gridengine": "qstat did not answer within 30s"}, set())
    assert decide(seen, None, 0.0)[0].action == "unknown"


def test_three_attempts_in_the_window_throttle_and_survive_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    history = RestartHistory(path, limit=3, window=3600)
    for moment in (100.0, 200.0, 300.0):
        history.record("t", moment)

    reloaded = RestartHistory(path, limit=3, window=3600)

    assert _decide(None, set(), history=reloaded) == "throttled"
    assert reloaded.throttled("t", 100.0 + 3600) is False  # the oldest attempt aged out


def test_an_unreadable_history_starts_empty_instead_of_crashing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")

    assert RestartHistory(path, 3, 3600).attempts == {}
