"""service.manifest: the original's keys, atomic writes, and hostile files refused with a clear error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolforgectl.core import manifest
from toolforgectl.core.errors import ManifestError
from toolforgectl.core.manifest import Manifest

ORIGINAL = """\
# This file is used by Toolforge infrastructure.
# Please do not edit manually at this time.
# Generated at 2019-03-02 11:24:15.123456
backend: gridengine
distribution: Debian
release: stretch
version: 3
web: lighttpd
web::extra_args:
- --canonical
"""


def test_a_manifest_the_original_wrote_is_understood(tmp_path: Path) -> None:
    path = tmp_path / "service.manifest"
    path.write_text(ORIGINAL)

    found = manifest.read(path, owner=os.getuid())

    assert found is not None
    assert (found.web, found.backend, found.release) == ("lighttpd", "gridengine", "stretch")
    assert found.extra_args == ("--canonical",)


def test_backend_defaults_to_gridengine_as_in_the_original() -> None:
    assert manifest.parse("version: 2\nweb: lighttpd\n", "m").backend == "gridengine"


def test_stop_removes_the_run_keys_and_keeps_version_and_unknown_keys() -> None:
    started = manifest.parse(ORIGINAL + "cpu: '1'\nnotes: mine\n", "m")

    stopped = started.stopped()

    assert stopped.web is None
    assert dict(stopped.data) == {"version": 3, "notes": "mine"}


def test_write_is_atomic_with_the_managed_header_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "service.manifest"
    wanted = Manifest().started("generic", "local", ("python3", "app.py"))

    manifest.write(path, wanted)

    text = path.read_text()
    assert text.startswith("# This file is used by Toolforge infrastructure.\n")
    assert "Managed by `webservice`" in text
    assert manifest.read(path, owner=os.getuid()) == wanted
    assert not path.with_name("service.manifest~").exists()
    assert path.stat().st_mode & 0o777 == 0o644


def test_write_never_follows_a_symlink_planted_as_the_temp_file(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path = tmp_path / "service.manifest"
    path.with_name("service.manifest~").symlink_to(victim)

    manifest.write(path, Manifest().started("static", "local"))

    assert victim.read_text() == "precious"
    assert manifest.read(path, owner=None) is not None


def test_a_missing_file_wants_nothing_and_an_empty_file_too(tmp_path: Path) -> None:
    assert manifest.read(tmp_path / "service.manifest", owner=None) is None
    (tmp_path / "service.manifest").write_text("")
    empty = manifest.read(tmp_path / "service.manifest", owner=None)
    assert empty is not None and empty.web is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web: [unclosed\n", "not valid YAML"),
        ("- a list\n", "mapping"),
        ("web: 5\n", "web must be text"),
        ("web: x\nbackend: mesos\n", "backend must be one of"),
        ("web: x\nweb::extra_args: --canonical\n", "list of text"),
        ("version: yes\n", "version must be an integer"),
    ],
)
def test_malformed_content_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "service.manifest"
    path.write_text(text)

    with pytest.raises(ManifestError, match=message):
        manifest.read(path, owner=None)


def test_a_symlink_to_another_tools_manifest_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other" / "service.manifest"
    other.parent.mkdir()
    other.write_text("web: lighttpd\n")
    mine = tmp_path / "service.manifest"
    mine.symlink_to(other)

    with pytest.raises(ManifestError, match="is a symlink"):
        manifest.read(mine, owner=os.getuid())


def test_a_file_not_owned_by_the_tool_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "service.manifest"
    path.write_text("web: lighttpd\n")

    with pytest.raises(ManifestError, match=f"owned by uid {os.getuid()}, not by the tool"):
        manifest.read(path, owner=os.getuid() + 1)


def test_a_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "service.manifest"
    with path.open("wb") as file:
        file.truncate(50 * 1024 * 1024)  # sparse: 50 MiB of nothing

    with pytest.raises(ManifestError, match="more than the 65536"):
        manifest.read(path, owner=None)


def test_a_fifo_is_refused_instead_of_blocking_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "service.manifest"
    os.mkfifo(path)

    with pytest.raises(ManifestError, match="not a regular file"):
        manifest.read(path, owner=None)
