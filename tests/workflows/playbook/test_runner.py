"""The runner, driven as operators drive it: the CLI as a process, the lock on two real Redis.

The demo playbooks (playbooks/ beside this file) keep their state in files of a work directory,
so each test can see the real state, change it behind the runner's back, and hold a run at a
gate (`go.waiting` appears; the run goes on when the test creates `go`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

from tests.cli.test_interrupt import ctrl_c_handled
from tests.conftest import REPO, wait_until
from tests.workflows.playbook.conftest import DemoFleet, env

RUN_ID = re.compile(r"\b(\d{8}T\d{6}Z-[a-z0-9-]+-[0-9a-f]{4})\b")


def run_id(text: str) -> str:
    found = RUN_ID.search(text)
    assert found, text
    return found[1]


def statuses(data: dict[str, object]) -> dict[str, str]:
    steps = data["steps"]
    assert isinstance(steps, list)
    return {step["id"]: step["status"] for step in steps}


def held_at_gate(fleet: DemoFleet, cli: subprocess.Popen[str]) -> None:
    """Wait until the run sits at its gate (or fail with what it printed, if it ended)."""

    def waiting() -> bool:
        if cli.poll() is not None:
            raise AssertionError(f"the run ended early: {cli.communicate()}")
        return (fleet.work / "go.waiting").exists()

    wait_until(waiting, "the run to reach its gate", timeout=60)


def test_a_run_applies_each_step_audits_it_and_logs_start_and_end(fleet: DemoFleet) -> None:
    (fleet.work / "go").touch()

    done = fleet.run(
        "demo-run", "demo", "--dir", str(fleet.work), "--yes", "--reason", "testing", "--task-id", "T42"
    )

    assert done.code == 0, done.stderr
    assert (fleet.work / "a").read_text() == "A" and (fleet.work / "b").read_text() == "B"
    assert fleet.lock() == [None, None], "released on both proxies"
    run = run_id(done.stderr)
    records = fleet.audit(run)
    start = records[0]
    actor = start["actor"]
    assert start["event"] == "start" and start["args"] == {"dir": str(fleet.work)}
    assert (start["reason"], start["task_id"], start["dry_run"]) == ("testing", "T42", False)
    assert isinstance(actor, str) and actor.endswith(f"@{socket.gethostname()}")
    steps = [r for r in records if r["event"] == "step"]
    assert [(s["id"], s["status"]) for s in steps] == [
        ("first", "done"),
        ("gate", "done"),
        ("second", "done"),
    ]
    assert steps[0]["changes"] == [{"target": "a", "old": None, "new": "A"}]
    assert records[-1]["event"] == "end" and records[-1]["result"] == "ok"
    sal = (fleet.state.parent / "sal.log").read_text().splitlines()
    assert len(sal) == 2
    assert f"START - toolforgectl demo dir={fleet.work} (run {run}): testing - {actor} - T42" in sal[0]
    assert f"END (PASS) - toolforgectl demo (exit_code=0) (run {run}): testing - {actor} - T42" in sal[1]


def test_a_step_whose_target_state_holds_reports_already_done_and_is_not_applied(fleet: DemoFleet) -> None:
    (fleet.work / "go").touch()
    (fleet.work / "a").write_text("A")
    before = (fleet.work / "a").stat().st_mtime_ns

    done = fleet.run("demo-run", "demo", "--dir", str(fleet.work), "--yes", "--json")

    assert done.code == 0, done.stderr
    data = json.loads(done.stdout)["data"]
    assert statuses(data) == {"first": "already done", "gate": "done", "second": "done"}
    assert (fleet.work / "a").stat().st_mtime_ns == before, "not written again"


def test_a_run_with_nothing_to_change_needs_no_confirmation_and_logs_nothing(fleet: DemoFleet) -> None:
    for name, content in (("a", "A"), ("go.passed", "passed"), ("b", "B")):
        (fleet.work / name).write_text(content)

    done = fleet.run("demo-run", "demo", "--dir", str(fleet.work))

    assert done.code == 0, done.stderr
    assert "nothing to do" in done.stderr
    assert not (fleet.state.parent / "sal.log").exists()


def test_dry_run_runs_the_checks_and_changes_nothing(fleet: DemoFleet) -> None:
    keys_before = [sorted(server.client().keys("*")) for server in fleet.redis]

    done = fleet.run("demo-run", "demo", "--dir", str(fleet.work), "--dry-run", "--json")

    assert done.code == 0, done.stderr
    data = json.loads(done.stdout)["data"]
    assert data["dry_run"] is True and data["result"] == "dry run"
    assert statuses(data) == {"first": "planned", "gate": "planned", "second": "planned"}
    assert data["preflight"][0]["status"] == "ok", "the checks ran"
    assert sorted(p.name for p in fleet.work.iterdir()) == [], "no step applied"
    assert [sorted(server.client().keys("*")) for server in fleet.redis] == keys_before, "no lock written"
    assert list(fleet.state.glob("*.json")) == [], "no resumable state"
    assert not (fleet.state.parent / "sal.log").exists(), "no START/END record"
    assert fleet.audit(data["run"])[0]["dry_run"] is True


def test_without_a_terminal_and_without_yes_it_refuses_with_exit_2_and_changes_nothing(
    fleet: DemoFleet,
) -> None:
    done = fleet.run("demo-run", "demo", "--dir", str(fleet.work))

    assert done.code == 2
    assert "without confirmation: stdin is not a terminal; pass --yes" in done.stderr.splitlines()[-1]
    assert sorted(p.name for p in fleet.work.iterdir()) == []
    assert fleet.lock() == [None, None]


def test_a_preflight_failure_stops_the_run_before_any_change(fleet: DemoFleet) -> None:
    (fleet.work / "not-ready").touch()

    done = fleet.run("demo-run", "demo", "--dir", str(fleet.work), "--yes")

    assert done.code == 1
    assert done.stderr.splitlines()[-1] == (
        "toolforgectl: error: preflight failed, nothing was changed: demo-ready: the file not-ready is there"
    )
    assert sorted(p.name for p in fleet.work.iterdir()) == ["not-ready"]
    assert fleet.lock() == [None, None]


def test_a_second_run_is_refused_by_the_lock_and_told_who_holds_it_until_when(fleet: DemoFleet) -> None:
    first = fleet.start("demo-run", "demo", "--dir", str(fleet.work), "--yes")
    try:
        held_at_gate(fleet, first)
        holders = fleet.lock()
        assert all(h is not None and h["holder"].endswith(f"pid {first.pid}") for h in holders), holders

        second = fleet.run("demo-run", "demo", "--dir", str(fleet.work), "--yes")

        assert second.code == 1
        line = second.stderr.splitlines()[-1]
        held = holders[0]
        assert held is not None
        assert (
            f"the lock 'demo' is held by {held['holder']} (run {held['run']}) until {held['expires']}" in line
        )
        assert fleet.lock() == holders, "the refused run took nothing, released nothing"
        (fleet.work / "go").touch()
        assert first.wait(timeout=60) == 0, first.communicate()
    finally:
        first.kill()
        first.wait()
    assert fleet.lock() == [None, None]


def test_ctrl_c_rolls_back_what_was_done_and_releases_the_lock(fleet: DemoFleet) -> None:
    with ctrl_c_handled():
        cli = fleet.start("demo-run", "demo", "--dir", str(fleet.work), "--yes")
    try:
        held_at_gate(fleet, cli)
        assert None not in fleet.lock()
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=60) == 130
        _, err = cli.communicate()
    finally:
        cli.kill()
        cli.wait()
    assert err.splitlines()[-1] == "toolforgectl: error: interrupted"
    assert fleet.lock() == [None, None]
    assert (fleet.work / "rollbacks.log").read_text() == "gate\nfirst\n", "the step at work first"
    assert not (fleet.work / "a").exists()


def test_after_sigkill_resume_finishes_and_checks_the_real_state_again(fleet: DemoFleet) -> None:
    cli = fleet.start("demo-run", "demo", "--dir", str(fleet.work), "--yes")
    try:
        held_at_gate(fleet, cli)
        run = (fleet.work / "go.waiting").read_text()
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait(timeout=30)
    finally:
        cli.kill()
        cli.wait()
    saved = json.loads((fleet.state / f"{run}.json").read_text())
    assert saved["status"] == "running" and saved["steps"]["first"]["status"] == "done"
    assert all(h is not None and h["run"] == run for h in fleet.lock()), "a killed run leaves its lock"
    # Behind the checkpoint's back: someone undid step 1, and the gate is open now.
    (fleet.work / "a").unlink()
    (fleet.work / "go").touch()

    done = fleet.run("demo-run", "demo", "--dir", str(fleet.work), "--yes", "--resume", run, "--json")

    assert done.code == 0, done.stderr
    data = json.loads(done.stdout)["data"]
    assert (data["run"], data["resumed"]) == (run, True)
    assert statuses(data) == {"first": "done", "gate": "done", "second": "done"}, "step 1 applied again"
    assert (fleet.work / "a").read_text() == "A" and (fleet.work / "b").read_text() == "B"
    assert fleet.lock() == [None, None]
    assert [r["event"] for r in fleet.audit(run)].count("resume") == 1
    assert json.loads((fleet.state / f"{run}.json").read_text())["status"] == "ok"


def test_resume_of_an_unknown_run_or_with_other_arguments_is_refused(
    fleet: DemoFleet, tmp_path: Path
) -> None:
    missing = fleet.run(
        "demo-run", "demo", "--dir", str(fleet.work), "--yes", "--resume", "20260101T000000Z-demo-abcd"
    )
    assert missing.code == 1 and "nothing to resume" in missing.stderr
    for name, content in (("a", "A"), ("go.passed", "passed"), ("b", "B")):
        (fleet.work / name).write_text(content)
    first = fleet.run("demo-run", "demo", "--dir", str(fleet.work), "--yes")
    other = fleet.run("demo-run", "demo", "--dir", str(tmp_path), "--yes", "--resume", run_id(first.stderr))
    assert other.code == 2 and "resume it with the same arguments" in other.stderr


def test_a_failure_before_the_point_of_no_return_rolls_back_last_step_first(fleet: DemoFleet) -> None:
    done = fleet.run("demo-run", "demo-fail", "--dir", str(fleet.work), "--yes")

    assert done.code == 1
    assert (fleet.work / "rollbacks.log").read_text() == "third\nsecond\nfirst\n"
    assert not (fleet.work / "a").exists() and not (fleet.work / "b").exists()
    assert done.stderr.splitlines()[-1].endswith(
        "step third failed: the demo step fails on purpose; rolled back, nothing is left changed"
    )
    assert fleet.lock("demo-fail") == [None, None]
    assert (
        "END (ROLLED BACK) - toolforgectl demo-fail (exit_code=1)"
        in (fleet.state.parent / "sal.log").read_text()
    )


def test_a_failure_past_the_point_of_no_return_prints_instructions_instead_of_rolling_back(
    fleet: DemoFleet,
) -> None:
    done = fleet.run("demo-run", "demo-ponr", "--dir", str(fleet.work), "--yes")

    assert done.code == 1
    assert not (fleet.work / "rollbacks.log").exists(), "nothing rolled back"
    assert (fleet.work / "a").read_text() == "A" and (fleet.work / "b").read_text() == "B"
    assert "operator instructions: third: nothing to undo for demo-fail" in done.stderr
    assert f"operator instructions: final: remove {fleet.work / 'b'} by hand" in done.stderr
    run = run_id(done.stderr)
    expected = "past the point of no return: follow the instructions above, or fix the cause and continue"
    assert f"{expected} with --resume {run}" in done.stderr


def test_verify_is_retried_with_growing_waits(fleet: DemoFleet) -> None:
    done = fleet.run("demo-run", "demo-retry", "--dir", str(fleet.work), "--yes")

    assert done.code == 0, done.stderr
    times = [float(t) for t in (fleet.work / "f.verifies").read_text().split()]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4, "0.2 s, then twice that"
    assert "flaky: verify attempt 1 failed (not there yet); retrying" in done.stderr


def test_a_verify_that_never_holds_within_its_retries_fails_the_step_and_rolls_back(fleet: DemoFleet) -> None:
    done = fleet.run("demo-run", "demo-retry-short", "--dir", str(fleet.work), "--yes")

    assert done.code == 1
    assert len((fleet.work / "f.verifies").read_text().split()) == 2
    assert done.stderr.splitlines()[-1].endswith(
        "step flaky failed: not there yet; rolled back, nothing is left changed"
    )
    assert not (fleet.work / "f").exists()


def test_start_and_end_can_go_to_a_command_such_as_a_sal_logger(fleet: DemoFleet, tmp_path: Path) -> None:
    said = tmp_path / "dologmsg.out"
    logger = tmp_path / "dologmsg"
    logger.write_text(f'#!/bin/sh\necho "$1|$2" >> {said}\n')
    logger.chmod(0o755)
    text = fleet.config.read_text().replace(f"file: '{tmp_path / 'sal.log'}'", f"command: '{logger} --tools'")
    fleet.config.write_text(text)
    (fleet.work / "go").touch()

    done = fleet.run("demo-run", "demo", "--dir", str(fleet.work), "--yes", "--reason", "logged")

    assert done.code == 0, done.stderr
    actor = fleet.audit(run_id(done.stderr))[0]["actor"]
    lines = said.read_text().splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["--tools|START", "--tools|END (PASS)"]
    assert all(line.endswith(f": logged - {actor}") for line in lines)


def test_sigterm_ends_a_run_like_ctrl_c(fleet: DemoFleet) -> None:
    cli = fleet.start("demo-run", "demo", "--dir", str(fleet.work), "--yes")
    try:
        held_at_gate(fleet, cli)
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=60) == 130
    finally:
        cli.kill()
        cli.wait()
    assert fleet.lock() == [None, None]
    assert (fleet.work / "rollbacks.log").read_text() == "gate\nfirst\n"


def test_a_failed_run_with_json_prints_only_the_error_envelope_on_stdout(fleet: DemoFleet) -> None:
    done = fleet.run("demo-run", "demo-fail", "--dir", str(fleet.work), "--yes", "--json")

    assert done.code == 1
    envelope = json.loads(done.stdout)  # one document: jq can read it
    assert (envelope["ok"], envelope["error"]["kind"]) == (False, "step")
    assert "rolled back, nothing is left changed" in envelope["error"]["message"]


def run_on_a_terminal(fleet: DemoFleet, answer: str, *args: str) -> tuple[int, str]:
    """Run the demo CLI with a terminal (a pty) as stdin, typing `answer` at it."""
    import pty

    primary, terminal = pty.openpty()
    try:
        cli = subprocess.Popen(
            fleet.argv(*args), stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=REPO, env=env(),
        )  # fmt: skip
        os.write(primary, answer.encode() + b"\n")  # the terminal keeps it until the prompt reads it
        _, err = cli.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(terminal)
    return cli.returncode, err


def test_on_a_terminal_only_go_proceeds(fleet: DemoFleet) -> None:
    (fleet.work / "go").touch()

    code, err = run_on_a_terminal(fleet, "yes", "demo-run", "demo", "--dir", str(fleet.work))
    assert code == 2, err
    assert "Type 'go' to proceed" in err and "not confirmed" in err.splitlines()[-1]
    assert not (fleet.work / "a").exists()

    code, err = run_on_a_terminal(fleet, "go", "demo-run", "demo", "--dir", str(fleet.work))
    assert code == 0, err
    assert (fleet.work / "b").read_text() == "B"
