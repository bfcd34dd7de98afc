"""The root help describes what exists: operations still to come are not promised there."""

from __future__ import annotations

from tests.conftest import run_cli

# Operations the design plans (failover, deploy, converge) but that have no command yet.
PLANNED = ("failover", "deploy", "converge")


def test_the_root_help_names_no_operation_without_a_command() -> None:
    shown = run_cli("--help", env={"COLUMNS": "200"})
    assert shown.code == 0
    commands = {
        line.split()[1] for line in shown.stdout.splitlines() if line.startswith("│ ") and "  " in line
    }
    for operation in PLANNED:
        assert operation not in shown.stdout.lower() or operation in commands, operation
