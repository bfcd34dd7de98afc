"""A graceful restart with a slow client connected: a job registering meanwhile still gets its route.

The old listener takes its read deadline and more to stop (it finishes the slow client's request),
and the new one starts only once it is gone, as systemd restarts a service. The red-team run saw
~7.5 s of refused connections against a client budget of 3.5 s.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.daemons.regstack import BIN, Listener, Stack, systemd_socket, venv_env
from toolforgectl.daemons.clients import proxyclient
from toolforgectl.daemons.proxylistener.main import LINGER_SECONDS, STOP_GRACE

READ_TIMEOUT = 5.0  # the default: the slow client holds the old listener this long, then the linger
START_ALLOWANCE = 5.0  # a generous start of the new process on a loaded machine


def test_the_clients_default_budget_outlasts_the_longest_stop_and_a_start() -> None:
    assert sum(proxyclient.backoff(proxyclient.RETRIES)) > STOP_GRACE + START_ALLOWANCE
    assert STOP_GRACE >= READ_TIMEOUT + LINGER_SECONDS, "a slow client is finished, not cut off"


@pytest.mark.parametrize("handover", [True, False], ids=["systemd socket", "port bound again"])
def test_a_registration_during_a_restart_succeeds_within_the_clients_default_budget(
    stack: Stack, tmp_path: Path, handover: bool
) -> None:
    handed = systemd_socket() if handover else None
    try:
        old = stack.listener(handed=handed, read_timeout=READ_TIMEOUT)
        with socket.create_connection(("127.0.0.1", old.port), timeout=30) as slow:
            slow.sendall(b"register\n")  # and nothing more: the old listener waits for the rest
            wait_until(lambda: "proxylistener_connections 1.0" in old.scrape(), "the slow client served")
            old.process.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            wait_until(lambda: _logged(old, "stopping"), "the old listener to stop accepting")
            runner = _runner(old, tmp_path)  # default retries and timeout: the budget under test
            old.process.popen.wait(timeout=STOP_GRACE + 10)  # type: ignore[union-attr]
            new = stack.listener(handed=handed, port=old.port, read_timeout=READ_TIMEOUT)
            _, stderr = runner.communicate(timeout=60)
    finally:
        if handed is not None:
            handed.close()

    assert runner.returncode == 0, stderr
    messages = [json.loads(line)["message"] for line in stderr.splitlines()]
    assert any(message.startswith("registered http://127.0.0.1:") for message in messages)
    audit = stack.client().xrange("toolforgectl:audit:mytool")
    # registerCanonical's route and its redirect, then `true` ended: the unregister.
    assert [fields["action"] for _, fields in audit] == ["set", "redirect", "delete"]
    assert [entry["outcome"] for entry in new.log_entries()] == ["ok", "ok"], "both by the new one"
    if handover:  # the socket stayed open: the runner's connection waited for the new process
        assert not [message for message in messages if "retrying" in message]


def _runner(listener: Listener, tmp_path: Path) -> subprocess.Popen[str]:
    token_file = tmp_path / "token"
    token_file.write_text(listener.token("mytool"))
    token_file.chmod(0o600)
    argv = [str(BIN / "webservice-runner"), "--proxy", "127.0.0.1", "--proxy-port", str(listener.port)]
    argv += ["--token-file", str(token_file), "--no-append-port", "--", "true"]
    return subprocess.Popen(argv, cwd=tmp_path, env=venv_env(), stderr=subprocess.PIPE, text=True)


def _logged(listener: Listener, start: str) -> bool:
    return any(line["message"].startswith(start) for line in listener.log_lines())
