"""The hiera adapter: a YAML file (in a git checkout or not) and a Puppet-ENC-style HTTP API.

The HTTP backend talks to a small real server started on loopback by each test: GET and PUT of
one prefix's YAML, with ETags, as such an API answers.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from toolforgectl.adapters.hiera import MISSING, FileBackend, Hiera, HttpBackend, open_hiera
from toolforgectl.core.config import Hiera as HieraSettings
from toolforgectl.core.errors import HieraConflictError, HieraError

KEY = "profile::toolforge::active_proxy_host"
DOCUMENT = f"# Toolforge's hiera\n{KEY}: proxy-01  # which proxy is active\nother::key: [a, b]\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git checkout holding hiera.yaml, committed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "hiera.yaml").write_text(DOCUMENT)
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return repo


def test_setting_a_key_changes_only_its_value_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "hiera.yaml"
    path.write_text(DOCUMENT)
    hiera = Hiera(FileBackend(path))

    change = hiera.set(KEY, "proxy-02", expect="proxy-01", message="m")

    assert path.read_text() == DOCUMENT.replace("proxy-01", "proxy-02")
    assert (change.old, change.new) == ("proxy-01", "proxy-02")
    assert (
        f"-{KEY}: proxy-01  # which proxy is active\n+{KEY}: proxy-02  # which proxy is active" in change.diff
    )
    assert hiera.get(KEY) == "proxy-02"


def test_a_key_not_there_yet_is_added_and_removed_again(tmp_path: Path) -> None:
    path = tmp_path / "hiera.yaml"
    path.write_text(DOCUMENT)
    hiera = Hiera(FileBackend(path))

    hiera.set("new::key", 3, expect=MISSING, message="m")
    assert hiera.get("new::key") == 3
    hiera.set("new::key", MISSING, expect=3, message="m")

    assert path.read_text() == DOCUMENT


def test_a_value_changed_since_it_was_read_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "hiera.yaml"
    path.write_text(DOCUMENT)
    hiera = Hiera(FileBackend(path))
    seen = hiera.get(KEY)
    path.write_text(DOCUMENT.replace("proxy-01", "proxy-03"))  # another operator, meanwhile

    conflict = r"changed since it was read .was 'proxy-01', now 'proxy-03'"
    with pytest.raises(HieraConflictError, match=conflict):
        hiera.set(KEY, "proxy-02", expect=seen, message="m")
    assert hiera.get(KEY) == "proxy-03"


def test_the_file_changed_between_read_and_write_is_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "hiera.yaml"
    path.write_text(DOCUMENT)
    backend = FileBackend(path)
    before = backend.read()
    path.write_text(DOCUMENT + "late::edit: 1\n")

    with pytest.raises(HieraConflictError):
        backend.write(before, "x: 1\n", "m")
    assert path.read_text().endswith("late::edit: 1\n")


def test_in_a_git_checkout_each_change_is_one_commit_with_the_reason(checkout: Path) -> None:
    hiera = Hiera(FileBackend(checkout / "hiera.yaml"))

    hiera.set(
        KEY, "proxy-02", expect="proxy-01", message="hiera: set it\n\nmaintenance - alice@bastion - T1\n"
    )

    assert (
        git(checkout, "log", "--format=%s|%b", "-1").strip()
        == "hiera: set it|maintenance - alice@bastion - T1"
    )
    assert git(checkout, "status", "--porcelain") == "", "committed, nothing left over"
    assert git(checkout, "rev-list", "--count", "HEAD").strip() == "2"


def test_in_a_git_checkout_uncommitted_changes_are_refused(checkout: Path) -> None:
    path = checkout / "hiera.yaml"
    path.write_text(DOCUMENT + "someone::else: 1\n")
    hiera = Hiera(FileBackend(path))

    with pytest.raises(HieraError, match="has uncommitted changes"):
        hiera.set(KEY, "proxy-02", expect="proxy-01", message="m")
    assert hiera.get(KEY) == "proxy-01"


def test_a_file_that_is_not_a_mapping_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "hiera.yaml"
    path.write_text("a: 1\nb: [\n")
    with pytest.raises(HieraError, match=r"hiera.yaml:\d+: not valid YAML"):
        Hiera(FileBackend(path)).read()
    path.write_text("- a\n")
    with pytest.raises(HieraError, match="must be a mapping"):
        Hiera(FileBackend(path)).read()


class EncApi:
    """The prefix's YAML behind GET and PUT, with ETags; `fail_with` makes the next request fail."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.fail_with = 0
        self.puts: list[dict[str, str]] = []

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.text.encode()).hexdigest()[:16] + '"'


@pytest.fixture
def enc() -> Iterator[tuple[EncApi, str]]:
    api = EncApi(DOCUMENT)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, code: int, body: str = "") -> None:
            self.send_response(code)
            self.send_header("ETag", api.etag)
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

        def do_GET(self) -> None:
            if api.fail_with:
                code, api.fail_with = api.fail_with, 0
                return self._answer(code, "backend trouble\n")
            return self._answer(200, api.text)

        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            api.puts.append(dict(self.headers))
            if api.fail_with:
                code, api.fail_with = api.fail_with, 0
                return self._answer(code, "backend trouble\n")
            if self.headers.get("If-Match") not in (None, api.etag):
                return self._answer(412, "precondition failed\n")
            api.text = body
            return self._answer(204)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"http://127.0.0.1:{server.server_address[1]}/v1/prefix/toolsbeta"
    finally:
        server.shutdown()
        server.server_close()


def test_http_backend_reads_and_writes_the_prefix_yaml_with_if_match(enc: tuple[EncApi, str]) -> None:
    api, url = enc
    hiera = open_hiera(HieraSettings(backend="http", url=url))
    etag = api.etag

    change = hiera.set(KEY, "proxy-02", expect="proxy-01", message="m")

    assert change.new == "proxy-02" and api.text == DOCUMENT.replace("proxy-01", "proxy-02")
    assert api.puts[-1]["If-Match"] == etag
    assert api.puts[-1]["Content-Type"] == "application/x-yaml"


def test_http_backend_a_concurrent_put_is_a_conflict_412(enc: tuple[EncApi, str]) -> None:
    api, url = enc
    backend = HttpBackend(url, 5.0)
    before = backend.read()
    api.text = DOCUMENT + "late::edit: 1\n"

    with pytest.raises(HieraConflictError, match="412"):
        backend.write(before, "x: 1\n", "m")
    assert api.text.endswith("late::edit: 1\n")


def test_http_backend_errors_say_the_status_and_exit_3(enc: tuple[EncApi, str]) -> None:
    api, url = enc
    api.fail_with = 500
    with pytest.raises(HieraError, match=r"GET .* answered 500 .*: backend trouble") as raised:
        Hiera(HttpBackend(url, 5.0)).read()
    assert raised.value.exit_code == 3
    with pytest.raises(HieraError, match="cannot GET"):
        Hiera(HttpBackend("http://127.0.0.1:1/x", 5.0)).read()
