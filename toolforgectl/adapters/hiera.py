"""Hiera: read a key, and change one by read-modify-write with a diff, never over a newer value.

Two backends behind one interface, chosen by the fleet config's `hiera.backend`:
- file: a YAML file. The edit replaces only the key's own text, so the file's comments and order
  stay; it is written atomically under a directory lock. When the file is in a git checkout,
  every change is one commit whose message carries the reason (a file with uncommitted changes
  is refused: our commit would take someone else's edit with it).
- http: a Puppet-ENC-style API: GET the prefix's YAML, PUT it back (`If-Match` with the ETag
  when the server gives one; 412 means someone else wrote first).

`Hiera.set(key, value, expect=...)` re-reads before writing and refuses (HieraConflictError)
when the key no longer holds `expect`, the value the caller's check saw.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from toolforgectl.core.config import Hiera as HieraSettings
from toolforgectl.core.errors import HieraConflictError, HieraError

MISSING: Any = object()
_FALLBACK_IDENTITY = [
    "-c",
    "user.name=toolforgectl",
    "-c",
    "user.email=toolforgectl@localhost",
]  # what get() returns for a key hiera does not have


@dataclass(frozen=True)
class Snapshot:
    """Hiera's document as read: its text, its data, and the version a write must still find."""

    text: str
    data: dict[str, Any]
    version: str  # the HTTP ETag, or a hash of the text
    etag: str = ""  # http: what If-Match sends back


@dataclass(frozen=True)
class HieraChange:
    """One key set (or that would be): old and new value, and the unified diff of the document."""

    key: str
    old: Any
    new: Any
    diff: str

    @property
    def changed(self) -> bool:
        """Whether the document differs (or would differ) afterwards."""
        return bool(self.diff)


class Backend(Protocol):
    """Where hiera's YAML lives; `write` must refuse (HieraConflictError) if `before` is stale."""

    where: str

    def read(self) -> Snapshot:
        """The document as it is now."""

    def write(self, before: Snapshot, text: str, message: str) -> None:
        """Replace the document read as `before` with `text`; `message` says why (a commit's)."""


class Hiera:
    """Keys of the fleet's hiera, over one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @property
    def where(self) -> str:
        """The file or URL, for messages."""
        return self.backend.where

    def read(self) -> Snapshot:
        """The whole document."""
        return self.backend.read()

    def get(self, key: str) -> Any:
        """The value of `key`, or MISSING."""
        return self.read().data.get(key, MISSING)

    def plan(self, key: str, value: Any) -> HieraChange:
        """What setting `key` to `value` would change (reads only)."""
        before = self.read()
        old = before.data.get(key, MISSING)
        text = _edited(before, key, value)
        return HieraChange(key, _shown(old), _shown(value), _diff(before.text, text, self.where))

    def set(self, key: str, value: Any, *, expect: Any, message: str) -> HieraChange:
        """Set `key` to `value` if it still holds `expect`; HieraConflictError if not. MISSING as
        `expect` means "absent", as `value` removes the key (a rollback of a key that was new)."""
        before = self.read()
        old = before.data.get(key, MISSING)
        if old is value or (old is not MISSING and value is not MISSING and old == value):
            return HieraChange(key, _shown(old), _shown(value), "")
        if not (old is expect or (old is not MISSING and expect is not MISSING and old == expect)):
            raise HieraConflictError(
                f"{self.where}: {key} changed since it was read (was {_shown(expect)!r},"
                f" now {_shown(old)!r}); nothing written"
            )
        text = _edited(before, key, value)
        self.backend.write(before, text, message)
        return HieraChange(key, _shown(old), _shown(value), _diff(before.text, text, self.where))


def open_hiera(settings: HieraSettings) -> Hiera:
    """The Hiera of the fleet config's `hiera:` section."""
    if settings.backend == "http":
        return Hiera(HttpBackend(settings.url, settings.timeout))
    return Hiera(FileBackend(Path(settings.path).expanduser()))


def _shown(value: Any) -> Any:
    return None if value is MISSING else value


def _diff(old: str, new: str, where: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"{where} (now)", f"{where} (planned)"
    )
    return "".join(lines)


def parse(text: str, where: str) -> dict[str, Any]:
    """Hiera's YAML as a mapping (an empty document is an empty one)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise HieraError(f"{where}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HieraError(f"{where}: hiera must be a mapping of keys, not {type(data).__name__}")
    return data


def _edited(before: Snapshot, key: str, value: Any) -> str:
    """`before`'s text with `key` set to `value` (MISSING: removed), touching nothing else, so
    comments and the order of keys stay."""
    wanted = {k: v for k, v in {**before.data, key: value}.items() if v is not MISSING}
    line = "" if value is MISSING else yaml.safe_dump({key: value}, sort_keys=False, width=10**6)
    node = yaml.compose(before.text) if before.data else None
    text = before.text
    found = _key_span(node, key) if isinstance(node, yaml.MappingNode) else None
    if found is None:
        text = text + ("" if not text or text.endswith("\n") else "\n") + line
    else:
        start, end = found
        if value is MISSING and not text[start:end].endswith("\n"):
            end = text.find("\n", end) + 1 or len(text)  # the rest of the line goes with the key
        replaced = line if text[start:end].endswith("\n") or not line else line.rstrip("\n")
        text = text[:start] + replaced + text[end:]
    if parse(text, "edited hiera") != wanted:
        # Anchors, merge keys or a key spelt twice: an edit in place could say something else.
        text = yaml.safe_dump(wanted, sort_keys=False) if wanted else ""
    return text


def _key_span(node: yaml.MappingNode, key: str) -> tuple[int, int] | None:
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node.start_mark.index, value_node.end_mark.index
    return None


class FileBackend:
    """Hiera as a YAML file; a commit per change when the file is in a git checkout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def read(self) -> Snapshot:
        """The file as it is now (a file not there yet reads as empty)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise HieraError(f"{self.path}: cannot read: {exc}") from None
        return Snapshot(text, parse(text, self.where), hashlib.sha256(text.encode()).hexdigest())

    def write(self, before: Snapshot, text: str, message: str) -> None:
        """Replace the file if it still is `before`, atomically; commit when in a git checkout."""
        repo = self._checkout()
        with self._locked():
            if self.read().version != before.version:
                raise HieraConflictError(f"{self.path} changed since it was read; nothing written")
            if repo is not None:
                self._refuse_uncommitted(repo)
            self._replace(text)
            if repo is not None:
                try:
                    self._commit(repo, message)
                except HieraError:
                    self._replace(before.text)  # leave the file as the checkout says it is
                    raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # The directory, not the file: the file is replaced by rename, so its inode changes.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _replace(self, text: str) -> None:
        mode = self.path.stat().st_mode & 0o7777 if self.path.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise HieraError(f"{self.path}: cannot write: {exc.strerror}") from None

    def _checkout(self) -> Path | None:
        try:
            top = self._git(self.path.parent, "rev-parse", "--show-toplevel")
        except HieraError:
            return None
        return Path(top.strip())

    def _refuse_uncommitted(self, repo: Path) -> None:
        if self.path.exists() and self._git(repo, "status", "--porcelain", "--", str(self.path)).strip():
            raise HieraError(
                f"{self.path} has uncommitted changes in {repo}; commit or revert them first, so that"
                " this change is a commit of its own"
            )

    def _commit(self, repo: Path, message: str) -> None:
        self._git(repo, "add", "--", str(self.path))
        # A checkout without an identity (a service account's) still gets its commit; the
        # message names the operator either way.
        identity = [] if self._git(repo, "config", "user.email", check=False).strip() else _FALLBACK_IDENTITY
        self._git(repo, *identity, "commit", "--quiet", "--no-verify", "-m", message, "--", str(self.path))

    def _git(self, where: Path, *args: str, check: bool = True) -> str:
        argv = ["git", "-C", str(where), *args]
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HieraError(f"git {args[0]} failed: {exc}") from None
        if done.returncode != 0 and check:
            said = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            raise HieraError(f"git {' '.join(args[:2])} in {where} failed: {said[0]}")
        return done.stdout


class HttpBackend:
    """Hiera of one prefix behind a Puppet-ENC-style HTTP API: GET and PUT of its YAML."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self.where = url

    def read(self) -> Snapshot:
        """GET the prefix's YAML (404: an empty document)."""
        request = urllib.request.Request(self.url, headers={"Accept": "application/x-yaml"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                text = answer.read().decode("utf-8")
                etag = answer.headers.get("ETag", "")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return Snapshot("", {}, "")
            raise self._error("GET", exc) from None
        except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
            raise HieraError(f"cannot GET {self.url}: {getattr(exc, 'reason', exc)}") from None
        version = etag or hashlib.sha256(text.encode()).hexdigest()
        return Snapshot(text, parse(text, self.where), version, etag)

    def write(self, before: Snapshot, text: str, message: str) -> None:
        """PUT `text`, conditional on the ETag read (else on the document being unchanged)."""
        del message  # the API keeps no message; the run's audit does
        headers = {"Content-Type": "application/x-yaml"}
        if before.etag:
            headers["If-Match"] = before.etag
        elif self.read().version != before.version:
            raise HieraConflictError(f"{self.url} changed since it was read; nothing written")
        request = urllib.request.Request(self.url, data=text.encode("utf-8"), headers=headers, method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code == 412:
                raise HieraConflictError(
                    f"{self.url} changed since it was read (412); nothing written"
                ) from None
            raise self._error("PUT", exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise HieraError(f"cannot PUT {self.url}: {getattr(exc, 'reason', exc)}") from None

    def _error(self, method: str, exc: urllib.error.HTTPError) -> HieraError:
        body = exc.read().decode("utf-8", "replace").strip().splitlines()[:1] or [""]
        return HieraError(f"{method} {self.url} answered {exc.code} {exc.reason}: {body[0][:200]}")
