"""webservice-runner and portreleaser as processes against a real proxylistener and Redis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, wait_until
from tests.daemons.regstack import BIN, Identd, Listener, Stack, exchange, free_port, venv_env
from toolforgectl.adapters.processes import ephemeral_range
from toolforgectl.daemons.clients.webservice_runner import server_argv


def _token_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a client to completion in `cwd` (a command given a port argument must not litter)."""
    return subprocess.run(
        argv, cwd=cwd, env=venv_env(), capture_output=True, text=True, timeout=60, check=False
    )


def _runner(listener: Listener, token_file: Path, *command: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        str(BIN / "webservice-runner"), "--proxy-port", str(listener.port), "--token-file", str(token_file),
        *extra, "--", *command,
    ]  # fmt: skip


def test_runner_registers_serves_on_the_port_and_unregisters_on_sigterm(stack: Stack, tmp_path: Path) -> None:
    listener = stack.listener()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "hello.txt").write_text("hello from mytool")
    (tmp_path / "active-proxy").write_text("127.0.0.1")  # as puppet writes it: no newline
    server = (sys.executable, "-m", "http.server", "--bind", "127.0.0.1")  # the port is appended
    argv = _runner(listener, _token_file(tmp_path, listener.token("mytool")), *server)
    argv[1:1] = ["--active-proxy-file", str(tmp_path / "active-proxy")]
    runner = subprocess.Popen(argv, cwd=tmp_path / "site", env=venv_env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: stack.client().exists("prefix:mytool") == 1, "mytool's route")
        backend = stack.client().hget("prefix:mytool", ".*")
        assert backend is not None and backend.startswith("http://127.0.0.1:")
        wait_until(lambda: _get(f"{backend}/hello.txt") == "hello from mytool", "the server to answer")
        shown = run_cli("--redis", stack.redis_url, "routes", "show", "mytool", "--json")
        assert json.loads(shown.stdout)["data"]["routes"][0]["reachable"] is True
        assert stack.client().hget("redirect:mytool", ".*") == "mytool.toolforge.org"  # registerCanonical
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)

    assert runner.returncode == 128 + signal.SIGTERM  # the server's fate, passed on
    assert stack.client().exists("prefix:mytool") == 0


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as page:
            return str(page.read().decode())
    except OSError:
        return None


def test_runner_passes_the_port_in_the_environment_and_unregisters_on_exit(
    stack: Stack, tmp_path: Path
) -> None:
    listener = stack.listener()
    seen = tmp_path / "seen"
    script = f'echo "$PORT" > {seen}'
    argv = _runner(listener, _token_file(tmp_path, listener.token("mytool")), "sh", "-c", script)
    argv[1:1] = ["--proxy", "127.0.0.1", "--no-append-port"]

    done = _run(argv, tmp_path)

    assert done.returncode == 0, done.stderr
    port = int(seen.read_text())
    assert 1024 <= port <= 65535
    registered = [line for line in _log(done.stderr) if line["message"].startswith("registered ")]
    assert registered[0]["message"] == f"registered http://127.0.0.1:{port} with 127.0.0.1"
    assert registered[0]["log.logger"] == "webservice-runner"
    assert stack.client().exists("prefix:mytool") == 0


def test_runner_picks_its_port_outside_the_kernels_ephemeral_range(tmp_path: Path) -> None:
    # Inside it, a proxy that keeps asking a dead tool's port can be given that port as its own
    # source and connect to itself (the lab's proxy and tools share 127.0.0.1): it then reads its own
    # request back and holds the visitor for the read timeout. A random port in 1024-65535 lands in
    # Linux's default range (32768-60999) 43% of the time, so eight runs outside it are no accident.
    found = ephemeral_range()
    assert found is not None
    low, high = found
    (tmp_path / "active-proxy").write_text("")  # no registration: only the port choice is looked at
    seen = tmp_path / "seen"
    argv = [str(BIN / "webservice-runner"), "--active-proxy-file", str(tmp_path / "active-proxy")]
    argv += ["--no-append-port", "--", "sh", "-c", f'echo "$PORT" >> {seen}']

    for _ in range(8):
        done = _run(argv, tmp_path)
        assert done.returncode == 0, done.stderr

    ports = [int(line) for line in seen.read_text().split()]
    assert len(ports) == 8
    assert [port for port in ports if low <= port <= high] == []
    assert all(1024 <= port <= 65535 for port in ports)


def test_the_port_fills_a_placeholder_or_is_appended() -> None:
    assert server_argv(["srv", "--port={port}"], 4000, append=True) == ["srv", "--port=4000"]
    assert server_argv(["srv"], 4000, append=True) == ["srv", "4000"]
    assert server_argv(["srv"], 4000, append=False) == ["srv"]


def test_runner_refused_by_the_proxy_exits_1_without_starting_the_server(
    stack: Stack, tmp_path: Path
) -> None:
    listener = stack.listener()
    marker = tmp_path / "started"
    forged = listener.token("mytool")[:-4] + "AAAA"
    argv = _runner(listener, _token_file(tmp_path, forged), "touch", str(marker))
    argv[1:1] = ["--proxy", "127.0.0.1"]

    done = _run(argv, tmp_path)

    assert done.returncode == 1
    assert "webservice-runner: error: proxy 127.0.0.1:" in done.stderr
    assert "refused: Refused: token is not valid." in done.stderr
    assert not marker.exists()


def test_runner_gives_up_after_bounded_retries_when_the_proxy_is_unreachable(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    argv = [
        str(BIN / "webservice-runner"), "--proxy", "127.0.0.1", "--proxy-port", str(free_port()),
        "--retries", "2", "--token-file", str(tmp_path / "none"), "--", "touch", str(marker),
    ]  # fmt: skip

    done = _run(argv, tmp_path)

    assert done.returncode == 1
    retries = [line for line in _log(done.stderr) if "retrying in" in line["message"]]
    assert [line["log.level"] for line in retries] == ["warning", "warning"]
    assert "failed: Connection refused" in done.stderr.splitlines()[-1]
    assert not marker.exists()


def test_an_empty_active_proxy_file_skips_registration_but_runs_the_server(
    stack: Stack, tmp_path: Path
) -> None:
    (tmp_path / "active-proxy").write_text("")
    marker = tmp_path / "started"
    argv = [str(BIN / "webservice-runner"), "--active-proxy-file", str(tmp_path / "active-proxy")]
    argv += ["--no-append-port", "--", "touch", str(marker)]

    done = _run(argv, tmp_path)

    assert done.returncode == 0, done.stderr
    assert marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"\xffproxy", "not UTF-8 text"),
        (b"proxy-01\nproxy-02", "more than one line"),
    ],
    ids=["missing", "garbled", "two lines"],
)
def test_an_unusable_active_proxy_file_is_one_error_line_and_no_server(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    if content is not None:
        (tmp_path / "active-proxy").write_bytes(content)
    marker = tmp_path / "started"
    argv = [str(BIN / "webservice-runner"), "--active-proxy-file", str(tmp_path / "active-proxy")]

    done = _run([*argv, "--", "touch", str(marker)], tmp_path)

    assert done.returncode == 1
    assert done.stderr.startswith("webservice-runner: error: ") and "Traceback" not in done.stderr
    assert message in done.stderr and "pass --proxy" in done.stderr
    assert not marker.exists()


def test_portreleaser_unregisters_this_hosts_route(stack: Stack, tmp_path: Path) -> None:
    listener = stack.listener()
    token = listener.token("mytool")
    assert exchange(listener.port, f"register\n.*\nhttp://127.0.0.1:41234\n{token}\n".encode()) == b"ok"
    argv = [str(BIN / "portreleaser"), "--proxy", "127.0.0.1", "--proxy-port", str(listener.port)]

    done = _run([*argv, "--token-file", str(_token_file(tmp_path, token))], tmp_path)

    assert done.returncode == 0, done.stderr
    assert stack.client().exists("prefix:mytool") == 0


def test_portreleaser_reports_a_refusal(stack: Stack, tmp_path: Path) -> None:
    listener = stack.listener()
    argv = [str(BIN / "portreleaser"), "--proxy", "127.0.0.1", "--proxy-port", str(listener.port)]
    forged = listener.token("admin")

    done = _run([*argv, "--token-file", str(_token_file(tmp_path, forged))], tmp_path)

    assert done.returncode == 1
    assert "portreleaser: error:" in done.stderr and "reserved" in done.stderr


def test_runner_without_a_token_speaks_the_original_three_lines_to_an_ident_listener(
    stack: Stack, identd: Identd, tmp_path: Path
) -> None:
    listener = stack.listener(identity=["ident"], ident_networks=["127.0.0.0/8"], ident_port=identd.port)
    argv = _runner(listener, tmp_path / "no-token", "true")
    argv[1:1] = ["--proxy", "127.0.0.1"]

    done = _run(argv, tmp_path)

    assert done.returncode == 0, done.stderr
    audit = stack.client().xrange("toolforgectl:audit:mytool")
    # registerCanonical: the route, then its redirect; the epilog's unregister removes both.
    assert [fields["action"] for _, fields in audit] == ["set", "redirect", "delete"]
    assert stack.client().exists("prefix:mytool", "redirect:mytool") == 0


def test_runner_without_a_token_is_served_at_once_by_a_migration_listener(
    stack: Stack, identd: Identd, tmp_path: Path
) -> None:
    # In `[token, ident]` mode three lines may still be followed by a token line; the runner's
    # half-close says they are not, so it is not kept waiting for the listener's read deadline.
    listener = stack.listener(
        identity=["token", "ident"], ident_networks=["127.0.0.0/8"], ident_port=identd.port, read_timeout=60.0
    )
    argv = _runner(listener, tmp_path / "no-token", "true")
    argv[1:1] = ["--proxy", "127.0.0.1", "--timeout", "10", "--retries", "0"]

    done = _run(argv, tmp_path)

    assert done.returncode == 0, done.stderr
    audit = stack.client().xrange("toolforgectl:audit:mytool")
    # registerCanonical: the route, then its redirect; the epilog's unregister removes both.
    assert [fields["action"] for _, fields in audit] == ["set", "redirect", "delete"]


def test_runner_registers_the_own_ip_it_is_given_and_the_proxy_checks_it(
    stack: Stack, tmp_path: Path
) -> None:
    listener = stack.listener()
    argv = _runner(listener, _token_file(tmp_path, listener.token("mytool")), "true")
    argv[1:1] = ["--proxy", "127.0.0.1", "--own-ip", "127.0.0.2"]

    done = _run(argv, tmp_path)

    assert done.returncode == 1
    assert "Destination 127.0.0.2 is not your address 127.0.0.1." in done.stderr


def test_a_token_file_others_can_read_is_warned_about(stack: Stack, tmp_path: Path) -> None:
    listener = stack.listener()
    token_file = _token_file(tmp_path, listener.token("mytool"))
    token_file.chmod(0o644)
    argv = [str(BIN / "portreleaser"), "--proxy", "127.0.0.1", "--proxy-port", str(listener.port)]

    done = _run([*argv, "--token-file", str(token_file)], tmp_path)

    assert done.returncode == 0, done.stderr
    warnings = [line for line in _log(done.stderr) if line["log.level"] == "warning"]
    assert [line["message"].split(" is ")[0] for line in warnings] == [str(token_file)]
    assert "is readable by others" in warnings[0]["message"]


def _log(stderr: str) -> list[dict[str, Any]]:
    """A client's log lines: one JSON object each (the final error line, if any, is plain)."""
    return [
        json.loads(line)
        for line in stderr.splitlines()
        if not line.startswith(("webservice-runner:", "portreleaser:"))
    ]
