"""The one poll loop: returns what the check found, or says what never came."""

from __future__ import annotations

import itertools

import pytest

from toolforgectl.core.errors import LabError, TimedOutError
from toolforgectl.core.waiting import wait_until


def test_the_wait_returns_the_first_truthy_answer() -> None:
    answers = itertools.chain([None, 0, ""], itertools.repeat("route"))

    assert wait_until(lambda: next(answers), "a route", timeout=5, interval=0.001) == "route"


def test_a_timeout_names_what_never_came_in_the_callers_error_class() -> None:
    with pytest.raises(TimedOutError, match=r"timed out after 0\.05s waiting for the route"):
        wait_until(lambda: False, "the route", timeout=0.05, interval=0.01)
    with pytest.raises(LabError, match="waiting for redis"):
        wait_until(lambda: False, "redis", timeout=0.01, interval=0.01, error=LabError)


def test_a_check_can_fail_early() -> None:
    def exited() -> bool:
        raise LabError("redis-server exited during start")

    with pytest.raises(LabError, match="exited during start"):
        wait_until(exited, "redis", timeout=60)
