"""`toolforgectl lab up | status | down` as a user runs them: separate processes, real servers."""

from __future__ import annotations

import json
import os
import signal
import ssl
import urllib.request
from pathlib import Path

from tests.conftest import run_cli


def pid_exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/cmdline").read_bytes() != b""


def test_lab_up_serves_a_sample_tool_and_down_leaves_nothing(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    up = run_cli("lab", "up", "--dir", str(lab), "--json")
    try:
        assert up.code == 0, up.stderr
        state = json.loads(up.stdout)["data"]
        proxy = state["proxies"]["proxy-01"]
        tls = ssl.create_default_context(cafile=proxy["certificate"])
        with urllib.request.urlopen(state["tools"]["hello"]["url"], context=tls, timeout=10) as reply:
            assert json.load(reply)["tool"] == "hello"
        with urllib.request.urlopen(proxy["internal"] + "/list", timeout=10) as reply:
            assert set(json.load(reply)) == {"hello", "echo"}

        status = run_cli("lab", "status", "--dir", str(lab), "--json")
        assert status.code == 0, status.stderr
        data = json.loads(status.stdout)["data"]
        assert data["running"] is True
        assert {p["role"] for p in data["processes"]} == {"redis", "nginx", "tool"}
        pids = [p["pid"] for p in data["processes"]]
        nginx = next(p["pid"] for p in data["processes"] if p["role"] == "nginx")
        workers = Path(f"/proc/{nginx}/task/{nginx}/children").read_text().split()
        assert workers, "nginx runs workers"
        pids += [int(pid) for pid in workers]

        routes = run_cli("--config", state["config"], "routes", "list", "--json")
        assert routes.code == 0 and "hello" in routes.stdout
    finally:
        down = run_cli("lab", "down", "--dir", str(lab))
    assert down.code == 0, down.stderr
    assert not [pid for pid in pids if pid_exists(pid)]
    assert run_cli("lab", "status", "--dir", str(lab)).code == 1


def test_lab_up_twice_is_refused_with_a_hint(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    assert run_cli("lab", "up", "--dir", str(lab)).code == 0
    try:
        again = run_cli("lab", "up", "--dir", str(lab))
        assert again.code == 1
        assert "lab down" in again.stderr
    finally:
        assert run_cli("lab", "down", "--dir", str(lab)).code == 0


def test_lab_status_shows_a_dead_process(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    assert run_cli("lab", "up", "--dir", str(lab)).code == 0
    try:
        state = json.loads((lab / "lab.json").read_text())
        tool = next(p for p in state["processes"] if p["role"] == "tool")
        os.kill(tool["pid"], signal.SIGKILL)
        status = run_cli("lab", "status", "--dir", str(lab))
        assert status.code == 0
        assert "DEGRADED" in status.stdout and "DOWN" in status.stdout
    finally:
        assert run_cli("lab", "down", "--dir", str(lab)).code == 0
