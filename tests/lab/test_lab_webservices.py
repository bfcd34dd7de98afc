"""The lab's tools as webservices: started with `webservice`, kept up by the lab's webservicemonitor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli, wait_until
from tests.lua.proxyclient import Proxy
from toolforgectl.adapters.localjobs import LocalJobs
from toolforgectl.lab import fleet, sampletool, webservices
from toolforgectl.lab.state import LabState


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabState]:
    directory = tmp_path / "lab"
    state = fleet.up(directory, tools=("hello",), monitor=True)
    try:
        yield state
    finally:
        fleet.down(directory)


def _webservice(state: LabState, *words: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "toolforgectl.daemons.clients.webservice", "--config", state.config, *words]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _answers(proxy: Proxy, tool: str) -> bool:
    reply = proxy.get(f"/{tool}/")
    return reply.status == 200 and reply.json()["tool"] == tool


def test_a_tool_started_with_webservice_answers_and_comes_back_after_a_kill(lab: LabState) -> None:
    proxy = Proxy(lab)
    home = Path(lab.dir) / "homes" / "demo"
    home.mkdir(parents=True)
    token = run_cli(
        "--config", lab.config, "tools", "token", "demo", "--write", str(home / ".proxylistener-token")
    )
    assert token.code == 0, token.stderr
    command = sampletool.command("demo", "127.0.0.1", "{port}")

    started = _webservice(lab, "--tool", "demo", "generic", "start", "--", *command)

    assert started.returncode == 0, started.stderr
    wait_until(lambda: _answers(proxy, "demo"), "https://<lab>/demo/ to answer")
    job = next(j for j in LocalJobs(Path(lab.dir) / "webservice-jobs").jobs() if j.owner == "demo")
    os.killpg(int(job.number), signal.SIGKILL)  # no unregistration: the route points at nothing now

    wait_until(
        lambda: _answers(proxy, "demo"),
        "the monitor to bring demo back",
        timeout=webservices.INTERVAL * 2 + 30,
    )

    stopped = _webservice(lab, "--tool", "demo", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert proxy.get("/demo/").status != 200
    status = run_cli("--config", lab.config, "webservices", "status", "--json")
    actions = {t["tool"]: t["action"] for t in json.loads(status.stdout)["data"]["tools"]}
    assert actions == {"demo": "none", "hello": "ok"}
