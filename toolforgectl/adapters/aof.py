"""Reading a Redis append-only file for the history of one key.

Handles the single-file AOF (optionally with an RDB preamble) and Redis 7's multi-part AOF: a
directory with a manifest naming a base file and incremental files in sequence. An RDB base holds
no command history, so only its AOF parts are read. `#TS:<unix time>` annotations (Redis 7 with
`aof-timestamp-enabled yes`) date the commands that follow them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toolforgectl.core.errors import NotFoundError, UsageError

_RESP_START = re.compile(rb"\*[0-9]+\r\n\$[0-9]+\r\n")
_RDB_MAGIC = b"REDIS"


@dataclass(frozen=True)
class Command:
    """One command found in the AOF, with the time of the last timestamp annotation before it."""

    time: float | None
    args: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of this command."""
        return asdict(self)


def files_in_order(path: Path, appendfilename: str = "appendonly.aof") -> list[Path]:
    """The AOF files to read, oldest first, for a file or a Redis 7 `appendonlydir`."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise NotFoundError(f"{path}: no AOF file or directory there")
    manifests = sorted(path.glob("*.manifest"))
    if not manifests:
        raise UsageError(f"{path}: an AOF directory needs a .manifest file")
    preferred = [m for m in manifests if m.name == f"{appendfilename}.manifest"]
    return _manifest_files(preferred[0] if preferred else manifests[0])


def _manifest_files(manifest: Path) -> list[Path]:
    entries: list[tuple[int, int, str]] = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        fields = dict(zip(line.split()[::2], line.split()[1::2], strict=False))
        kind, name = fields.get("type"), fields.get("file")
        if name is None or kind not in ("b", "i"):
            continue  # history files ("h") are being deleted by Redis and hold nothing new
        entries.append((0 if kind == "b" else 1, int(fields.get("seq", "0")), name))
    return [manifest.parent / name for _, _, name in sorted(entries)]


def commands(files: list[Path]) -> Iterator[Command]:
    """Every command in `files`, in order."""
    stamp: float | None = None
    for file in files:
        for item in _parse(_aof_part(file.read_bytes())):
            if isinstance(item, float):
                stamp = item
            else:
                yield Command(stamp, item)


def _aof_part(data: bytes) -> bytes:
    """The AOF commands of a file, skipping an RDB body (a base file or an RDB preamble)."""
    if not data.startswith(_RDB_MAGIC):
        return data
    match = _RESP_START.search(data)
    return data[match.start() :] if match else b""


def _parse(data: bytes) -> Iterator[float | tuple[str, ...]]:
    pos = 0
    while pos < len(data):
        if data[pos : pos + 1] == b"#":
            end = data.index(b"\n", pos)
            annotation = data[pos + 1 : end].strip()
            if annotation.startswith(b"TS:"):
                yield float(annotation[3:])
            pos = end + 1
            continue
        args, pos = _parse_array(data, pos)
        yield args


def _parse_array(data: bytes, pos: int) -> tuple[tuple[str, ...], int]:
    count, pos = _header(data, pos, b"*")
    args = []
    for _ in range(count):
        size, pos = _header(data, pos, b"$")
        args.append(data[pos : pos + size].decode("utf-8", "replace"))
        pos += size + 2
    return tuple(args), pos


def _header(data: bytes, pos: int, marker: bytes) -> tuple[int, int]:
    end = data.index(b"\r\n", pos)
    if data[pos : pos + 1] != marker:
        raise UsageError(f"AOF is damaged near byte {pos}: expected {marker.decode()!r}")
    return int(data[pos + 1 : end]), end + 2


def key_history(files: list[Path], key: str) -> list[Command]:
    """The commands in `files` that wrote `key`: HSET/HMSET/HDEL/DEL/UNLINK and the like."""
    return [cmd for cmd in commands(files) if _writes(cmd.args, key)]


def _writes(args: tuple[str, ...], key: str) -> bool:
    if not args:
        return False
    name = args[0].upper()
    if name in ("DEL", "UNLINK"):
        return key in args[1:]
    return name in ("HSET", "HMSET", "HSETNX", "HDEL", "RENAME") and args[1:2] == (key,)
