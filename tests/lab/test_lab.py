"""`toolforgectl lab up | status | down` as a user runs them: separate processes, real servers."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import urllib.request
from pathlib import Path

from tests.conftest import CliResult, run_cli, wait_until
from toolforgectl.adapters.routestore import RouteStore


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
        roles = {p["role"] for p in data["processes"]}
        assert roles == {"redis", "nginx", "proxylistener", "tool", "webservicemonitor"}
        pids = [p["pid"] for p in data["processes"]]
        nginx = next(p["pid"] for p in data["processes"] if p["role"] == "nginx")
        workers = _children(nginx)
        assert workers, "nginx runs workers"
        servers = [child for p in data["processes"] if p["role"] == "tool" for child in _children(p["pid"])]
        assert len(servers) == 2, "each webservice-runner runs its tool's server as a child"
        pids += workers + servers

        # The lab's Redis runs the proxy's rendered redis.conf.
        assert (Path(proxy["conf_dir"]) / "redis.conf").is_file()
        limits = RouteStore.from_url(proxy["redis"]).server_config("maxmemory-policy", "appendonly")
        assert limits == {"maxmemory-policy": "noeviction", "appendonly": "yes"}

        routes = run_cli("--config", state["config"], "routes", "list", "--json")
        assert routes.code == 0 and "hello" in routes.stdout
        history = run_cli("--config", state["config"], "debug", "history", "hello", "--json")
        audit = json.loads(history.stdout)["data"]["audit"]
        # registerCanonical, as webservice-runner sends: the route, then its canonical redirect.
        written = [(entry["action"], entry["actor"]) for entry in audit]
        assert written == [("set", "proxylistener@127.0.0.1"), ("redirect", "proxylistener@127.0.0.1")], (
            "the sample tool registered over TCP 8282"
        )
    finally:
        down = run_cli("lab", "down", "--dir", str(lab))
    assert down.code == 0, down.stderr
    assert not [pid for pid in pids if pid_exists(pid)]
    assert run_cli("lab", "status", "--dir", str(lab)).code == 1


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_lab_down_unregisters_the_tools_through_their_runners(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    up = run_cli("lab", "up", "--dir", str(lab), "--json")
    assert up.code == 0, up.stderr
    state = json.loads(up.stdout)["data"]
    redis_url = state["proxies"]["proxy-01"]["redis"]
    hello = next(p for p in state["processes"] if p.get("tool") == "hello")
    os.kill(hello["pid"], signal.SIGTERM)  # what the job scheduler does when a webservice stops
    try:

        def unregistered() -> CliResult | None:
            shown = run_cli("--redis", redis_url, "routes", "show", "hello")
            return shown if shown.code == 1 else None

        gone = wait_until(unregistered, "the runner to unregister hello", timeout=15, interval=0.1)
        assert "no routes" in gone.stderr
        assert run_cli("--redis", redis_url, "routes", "show", "echo").code == 0
    finally:
        assert run_cli("lab", "down", "--dir", str(lab)).code == 0


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


def test_lab_up_again_where_a_killed_tool_left_its_route_serves_the_tool(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    first = run_cli("lab", "up", "--dir", str(lab), "--json")
    assert first.code == 0, first.stderr
    try:
        state = json.loads(first.stdout)["data"]
        hello = next(p for p in state["processes"] if p.get("tool") == "hello")
        os.killpg(hello["pid"], signal.SIGKILL)  # runner and server at once: nothing unregisters hello
        store = RouteStore.from_url(state["proxies"]["proxy-01"]["redis"])
        assert store.routes("hello") == {".*": state["tools"]["hello"]["backend"]}, "the premise"
    finally:
        assert run_cli("lab", "down", "--dir", str(lab)).code == 0

    # The lab's Redis keeps its data: hello's route still names the killed server's port.
    again = run_cli("lab", "up", "--dir", str(lab), "--json")
    try:
        assert again.code == 0, again.stderr
        state = json.loads(again.stdout)["data"]
        tls = ssl.create_default_context(cafile=state["proxies"]["proxy-01"]["certificate"])
        with urllib.request.urlopen(state["tools"]["hello"]["url"], context=tls, timeout=10) as reply:
            assert json.load(reply)["tool"] == "hello"
    finally:
        assert run_cli("lab", "down", "--dir", str(lab)).code == 0


def paste(command: str) -> subprocess.CompletedProcess[str]:
    """Run a printed command line as a user pasting it would: a shell without the venv on $PATH."""
    return subprocess.run(
        ["bash", "-c", command], env=PASTE_ENV, capture_output=True, text=True, timeout=60, check=False
    )


PASTE_ENV = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def test_lab_up_prints_commands_that_work_when_pasted(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    up = run_cli("lab", "up", "--dir", str(lab))
    printed: dict[str, str] = {}
    try:
        assert up.code == 0, up.stderr
        printed = dict(re.findall(r"^  ([^:]+):\s+(.+)$", up.stdout, re.M))
        assert {"routes", "your tool", "then", "stop"} <= set(printed)
        for command in printed.values():
            assert command.startswith(("curl ", "/")), f"not pasteable without the venv on $PATH: {command}"

        routes = paste(printed["routes"])
        assert routes.returncode == 0 and "hello" in routes.stdout, routes.stderr

        # "your tool": a token, then webservice-runner registering a server; it runs until stopped.
        tool = subprocess.Popen(
            ["bash", "-c", printed["your tool"]],
            env=PASTE_ENV,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "mytool.log").open("wb"),  # the runner's lines, for a post-mortem
            start_new_session=True,
        )
        try:

            def answered() -> dict[str, object] | None:
                reply = paste(printed["then"])
                try:
                    body = json.loads(reply.stdout)
                except json.JSONDecodeError:
                    return None  # not registered yet: the proxy's fallback page
                return body if isinstance(body, dict) else None

            body = wait_until(answered, "the pasted tool to answer under /mytool/", timeout=30, interval=0.2)
            assert body["tool"] == "mytool" and body["uri"] == "/mytool/"
        finally:
            os.killpg(tool.pid, signal.SIGTERM)
            tool.wait(timeout=30)
    finally:
        stop = paste(printed["stop"]) if "stop" in printed else None
        if stop is None or stop.returncode != 0:
            run_cli("lab", "down", "--dir", str(lab))  # never leave a lab running
    assert stop is not None and stop.returncode == 0, stop and stop.stderr
    assert run_cli("lab", "status", "--dir", str(lab)).code == 1
