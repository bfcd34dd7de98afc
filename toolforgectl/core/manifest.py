"""A tool's `service.manifest`: what webservice it wants, read defensively and written atomically.

The file is YAML in the tool's home, as the original wrote it: a comment header saying it is
managed, then `version`, and while a webservice is wanted `web` (its type), `backend`
(`gridengine` when absent), `release`/`distribution`, `web::extra_args` and, for Kubernetes,
`replicas`, `cpu`, `memory`. `webservice stop` removes the run keys and keeps `version`: **a
manifest without `web` means no webservice is wanted.** Keys we do not know are kept as they are.

The monitor reads every tool's file as root, so a file is refused (ManifestError), never followed
or trusted, when it is a symlink (it could name another tool's file, or /etc/shadow), not a
regular file (a FIFO would block the monitor), not owned by the tool (the uid of its home),
larger than the cap, not UTF-8 or not YAML, or when a key has the wrong type.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolforgectl.core.errors import ManifestError

FILE_NAME = "service.manifest"
VERSION = 4
BACKENDS = ("gridengine", "kubernetes", "local")
DEFAULT_BACKEND = "gridengine"
RUN_KEYS = (
    "distribution",
    "release",
    "web",
    "buildservice-image",
    "backend",
    "cpu",
    "memory",
    "replicas",
    "web::extra_args",
)
HEADER = (
    "# This file is used by Toolforge infrastructure.\n"
    "# Please do not edit manually at this time.\n"
    "# Managed by `webservice`; last written {when}.\n"
)
MAX_BYTES = 65536
# libyaml's safe loader when PyYAML was built with it: the monitor parses thousands of manifests
# per pass, and the pure-Python parser is about 8 times slower. Both accept the same documents.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Manifest:
    """The parsed file: every key it holds, with typed views of the ones that matter."""

    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def web(self) -> str | None:
        """The webservice type, or None: no webservice wanted."""
        return self.data.get("web")

    @property
    def backend(self) -> str:
        """Where the webservice runs (`gridengine` when the file does not say)."""
        return str(self.data.get("backend") or DEFAULT_BACKEND)

    @property
    def extra_args(self) -> tuple[str, ...]:
        """Extra arguments for the type's command."""
        return tuple(self.data.get("web::extra_args") or ())

    @property
    def release(self) -> str | None:
        """The grid OS release the job was started on, if recorded."""
        return self.data.get("release")

    def started(self, web: str, backend: str, extra_args: tuple[str, ...] = (), **kube: Any) -> Manifest:
        """This manifest wanting a `web` webservice on `backend` (other keys kept)."""
        data = {key: value for key, value in self.data.items() if key not in RUN_KEYS}
        data.update(version=VERSION, web=web, backend=backend)
        if extra_args:
            data["web::extra_args"] = list(extra_args)
        data.update({key: value for key, value in kube.items() if value is not None})
        return Manifest(check(data, "the new manifest"))

    def stopped(self) -> Manifest:
        """This manifest wanting no webservice: the run keys gone, `version` kept."""
        data = {key: value for key, value in self.data.items() if key not in RUN_KEYS}
        data.setdefault("version", VERSION)
        return Manifest(data)


def check(data: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """`data` if its known keys have the types the format gives them; ManifestError otherwise."""
    for key in ("web", "release", "distribution", "cpu", "memory", "buildservice-image"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise ManifestError(f"{source}: {key} must be text, not {type(data[key]).__name__}")
    if data.get("backend") is not None and data["backend"] not in BACKENDS:
        raise ManifestError(
            f"{source}: backend must be one of {', '.join(BACKENDS)}, not {data['backend']!r}"
        )
    for key in ("version", "replicas"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int)):
            raise ManifestError(f"{source}: {key} must be an integer")
    extra = data.get("web::extra_args")
    if extra is not None and not (isinstance(extra, list) and all(isinstance(a, str) for a in extra)):
        raise ManifestError(f"{source}: web::extra_args must be a list of text")
    return data


def parse(text: str, source: str) -> Manifest:
    """A manifest from YAML `text`; `source` names it in errors. An empty file wants nothing."""
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ManifestError(f"{source}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return Manifest()
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ManifestError(f"{source}: expected a mapping of keys at the top level")
    return Manifest(check(data, source))


def render(manifest: Manifest, now: float | None = None) -> str:
    """The file's text: the managed-by header, then the keys in a stable order."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    body = yaml.safe_dump(dict(manifest.data), default_flow_style=False, sort_keys=True)
    return HEADER.format(when=when) + body


def read(path: Path, owner: int | None, max_bytes: int = MAX_BYTES) -> Manifest | None:
    """The manifest at `path`, or None when there is none; ManifestError when it cannot be trusted.

    `owner` is the uid the file must belong to (None: anyone's, for a tool reading its own file).
    The file is opened without following a symlink and checked on the open descriptor, so it
    cannot be swapped between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise ManifestError(f"{path}: is a symlink; a manifest must be the tool's own file") from None
        raise ManifestError(f"{path}: cannot open: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ManifestError(f"{path}: is not a regular file")
        if owner is not None and info.st_uid != owner:
            raise ManifestError(f"{path}: owned by uid {info.st_uid}, not by the tool (uid {owner})")
        if info.st_size > max_bytes:
            raise ManifestError(
                f"{path}: {info.st_size} bytes, more than the {max_bytes} a manifest may have"
            )
        raw = file.read(max_bytes + 1)
    if len(raw) > max_bytes:  # it grew after the fstat
        raise ManifestError(f"{path}: more than the {max_bytes} bytes a manifest may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None
    return parse(text, str(path))


def write(path: Path, manifest: Manifest, owner: tuple[int, int] | None = None) -> None:
    """Replace the file at `path` atomically: a new `service.manifest~` (never through a symlink
    someone left there), flushed to disk, then renamed over the old file. Mode 0644; with `owner`
    (uid, gid), given to them, so a file an admin writes for a tool is still the tool's own."""
    temp = path.with_name(path.name + "~")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()  # a leftover of a crash, or a planted symlink: unlink never follows it
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                os.fchown(file.fileno(), *owner)
            file.write(render(manifest))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise ManifestError(f"{path}: cannot write: {exc.strerror}") from None
