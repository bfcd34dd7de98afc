"""Playbook files are checked whole, and every problem points at its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.workflows.playbook import demo_steps  # registers the demo steps
from toolforgectl.core.errors import PlaybookError
from toolforgectl.workflows.playbook import spec

GOOD = """\
name: book
description: a test playbook
preflight:
  - step: demo-ready
steps:
  - step: demo-write
    retries: 2
    options: {name: a, content: A}
"""


def problem(tmp_path: Path, text: str) -> str:
    path = tmp_path / "book.yaml"
    path.write_text(text)
    with pytest.raises(PlaybookError) as raised:
        spec.load(path)
    return str(raised.value).replace(str(tmp_path) + "/", "")


def test_a_good_playbook_loads_with_typed_options_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "book.yaml"
    path.write_text(GOOD)

    book = spec.load(path)

    assert (book.name, book.lock) == ("book", "book")
    entry = book.steps[0]
    assert (entry.id, entry.retries, entry.delay, entry.backoff, entry.timeout) == (
        "demo-write",
        2,
        1.0,
        2.0,
        60.0,
    )
    assert entry.options == demo_steps.FileOptions(name="a", content="A")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("step: demo-write", "step: demo-writ"), "book.yaml:6: unknown step 'demo-writ' (known: "),
        (("retries: 2", "retries: two"), "book.yaml:7: steps[0].retries must be an integer, not a string"),
        (
            ("retries: 2", "retrys: 2"),
            "book.yaml:7: steps[0]: unknown setting 'retrys' (did you mean 'retries'?)",
        ),
        (("{name: a, content: A}", "{name: 1}"), "book.yaml:8: steps[0].options.name must be a string"),
        (("{name: a, content: A}", "{name: a, contnt: A}"), "book.yaml:8: steps[0].options: unknown setting"),
        (("name: book", "name: other"), "book.yaml:1: name 'other' must be the file's name, 'book'"),
        (
            ("    options: {name: a, content: A}", "    hosts: web"),
            "book.yaml:6: steps[0].options.name is required",
        ),
    ],
)
def test_each_problem_names_its_line(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    found = problem(tmp_path, GOOD.replace(*change))
    assert found.startswith(message), found


def test_a_step_that_cannot_roll_back_must_come_after_the_point_of_no_return(tmp_path: Path) -> None:
    text = GOOD + "  - step: demo-final\n    options: {name: b}\n"
    assert problem(tmp_path, text) == (
        "book.yaml:9: step 'demo-final' cannot roll back, so it must come at or after a step marked"
        " `point_of_no_return: true`"
    )
    marked = text.replace("  - step: demo-final\n", "  - step: demo-final\n    point_of_no_return: true\n")
    (tmp_path / "book.yaml").write_text(marked)
    assert spec.load(tmp_path / "book.yaml").steps[1].point_of_no_return


def test_a_step_used_twice_needs_an_id(tmp_path: Path) -> None:
    text = GOOD + "  - step: demo-write\n    options: {name: b}\n"
    assert problem(tmp_path, text).startswith(
        "book.yaml:9: step id 'demo-write' is used twice (first on line 6)"
    )


def test_lint_checks_the_shipped_playbooks_and_points_at_a_broken_one(tmp_path: Path) -> None:
    for path in spec.paths(REPO / "playbooks"):
        spec.load(path)  # what `toolforgectl lint` does first; the whole lint runs in test_lint.py
    broken = tmp_path / "playbooks"
    broken.mkdir()
    (broken / "hiera-set.yaml").write_text(
        "name: hiera-set\nsteps:\n  - step: set-hiera-key\n    timeout: -1\n"
    )

    done = run_cli("lint", "--playbooks", str(broken))

    assert done.code == 1
    assert done.stderr.strip() == (
        f"toolforgectl: error: {broken}/hiera-set.yaml:4: steps[0].timeout must be positive"
    )


def test_a_check_only_step_belongs_under_preflight(tmp_path: Path) -> None:
    text = "name: book\nsteps:\n  - step: demo-ready\n"
    assert problem(tmp_path, text) == "book.yaml:3: step 'demo-ready' only checks; put it under `preflight:`"
