"""`toolforgectl playbooks list|show`: what operations there are and what each does, in order."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_list_names_each_playbook_with_its_step_counts() -> None:
    done = run_cli("playbooks", "list", "--json")

    assert done.code == 0, done.stderr
    books = {book["name"]: book for book in json.loads(done.stdout)["data"]}
    assert books["hiera-set"]["preflight"] == 1 and books["hiera-set"]["steps"] == 1


def test_show_prints_the_steps_in_order_with_their_options() -> None:
    human = run_cli("playbooks", "show", "hiera-set")
    data = json.loads(run_cli("playbooks", "show", "hiera-set", "--json").stdout)["data"]

    assert human.code == 0
    assert "set-hiera-key" in human.stdout and "retries=2" in human.stdout
    assert data["lock"] == "hiera"
    assert [step["id"] for step in data["preflight"]] == ["hiera-readable"]
    step = data["steps"][0]
    assert (step["id"], step["retries"], step["delay"], step["point_of_no_return"]) == (
        "set-hiera-key",
        2,
        0.5,
        False,
    )


def test_show_of_an_unknown_playbook_lists_the_known_ones() -> None:
    done = run_cli("playbooks", "show", "failovr")
    assert done.code == 1
    assert done.stderr.startswith("toolforgectl: error: no playbook named 'failovr' (known: ")
    assert "hiera-set" in done.stderr
