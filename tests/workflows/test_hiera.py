"""`hiera set` through the runner: what the operator confirmed is what is overwritten, or nothing."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RedisServer
from toolforgectl.core import config
from toolforgectl.core.models import Attribution
from toolforgectl.workflows.playbook import runner, spec
from toolforgectl.workflows.playbook.report import Report
from toolforgectl.workflows.playbook.spec import Entry

KEY = "profile::toolforge::active_proxy_host"


class ChangedWhileAsking:
    """An operator at the prompt while someone else edits hiera; then they type `go`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def plan(self, report: Report) -> None:
        pass

    def confirm(self, question: str) -> bool:
        self.path.write_text(f"{KEY}: proxy-03\n")
        return True

    def step(self, index: int, total: int, entry: Entry, phase: str) -> None:
        pass

    def note(self, line: str) -> None:
        pass


def test_a_key_changed_after_the_plan_was_confirmed_is_not_overwritten(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    hiera = tmp_path / "hiera.yaml"
    hiera.write_text(f"{KEY}: proxy-01\n")
    fleet = config.parse(
        f"proxies: [{{name: p, redis: '{redis_server.url}'}}]\n"
        f"hiera: {{backend: file, path: '{hiera}'}}\noperations: {{state_dir: '{tmp_path / 'runs'}'}}\n",
        "fleet.yaml",
    )
    request = runner.Request(
        spec.find("hiera-set"),
        {"key": KEY, "value": "proxy-02"},
        Attribution("alice@bastion"),
        interactive=True,
    )

    report = runner.run(fleet, request, ChangedWhileAsking(hiera))

    assert "changed since it was read (was 'proxy-01', now 'proxy-03'); nothing written" in str(report.error)
    assert hiera.read_text() == f"{KEY}: proxy-03\n", "the other operator's value stays"
    assert report.result == "rolled back"
