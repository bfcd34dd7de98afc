"""qstat -xml read as Grid Engine writes it (samples beside this file), and what counts as running."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolforgectl.core import qstat
from toolforgectl.core.errors import WebserviceError
from toolforgectl.core.jobs import Job, by_name, is_running

SAMPLES = Path(__file__).parent / "qstat"


def test_every_job_of_both_sections_is_read_with_its_state() -> None:
    jobs = by_name(qstat.parse((SAMPLES / "mixed.xml").read_bytes()))

    assert jobs["lighttpd-dplbot"] == Job("9917301", "lighttpd-dplbot", "tools.dplbot", "r")
    assert {name: job.state for name, job in jobs.items()} == {
        "lighttpd-dplbot": "r",
        "uwsgi-python-my-tool": "dr",
        "nodejs-suspended": "s",
        "lighttpd-moving": "t",
        "lighttpd-broken": "Eqw",
        "tomcat-queued": "qw",
        "generic-held": "hqw",
    }


@pytest.mark.parametrize(
    ("state", "running"),
    [
        ("r", True),
        ("t", True),
        ("Rr", True),
        ("s", True),
        ("qw", True),
        ("hqw", True),
        ("Eqw", False),  # the original counted this as running and never restarted it
        ("dr", False),  # being deleted: it is going away
        ("dt", False),
        ("", False),
    ],
)
def test_error_and_deleting_states_do_not_count_as_running(state: str, running: bool) -> None:
    assert is_running(state) is running


def test_an_empty_grid_lists_no_jobs() -> None:
    assert qstat.parse((SAMPLES / "empty.xml").read_bytes()) == []


def test_output_that_is_not_xml_is_an_error_not_a_crash() -> None:
    with pytest.raises(WebserviceError, match="not XML"):
        qstat.parse(b"error: commlib error: got select error (Connection refused)\n")


def test_rendered_xml_reads_back_as_the_same_jobs() -> None:
    jobs = [Job("1", "lighttpd-a", "tools.a", "r"), Job("2", "generic-b&c", "tools.b", "Eqw")]

    assert qstat.parse(qstat.render(jobs)) == jobs


def test_a_running_job_wins_over_a_lingering_one_of_the_same_name() -> None:
    old, new = Job("1", "lighttpd-a", "tools.a", "dr"), Job("2", "lighttpd-a", "tools.a", "qw")

    assert by_name([old, new])["lighttpd-a"] is new
    assert by_name([new, old])["lighttpd-a"] is new
