"""The config file as YAML: its text read safely, its data, and the line each setting was written on.

The data goes to the schema (pydantic) as plain Python; the node tree stays beside it so that an
error's `loc` (`("proxies", 0, "adress")`) can be turned back into the line an operator has to fix.
Every problem found here is one ConfigError that starts with `file:line:`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolforgectl.core.errors import ConfigError

Loc = Sequence[int | str]  # a path into the document, spelled as pydantic's error `loc` spells it


@dataclass(frozen=True)
class Document:
    """A parsed YAML document: its data, and the node tree that remembers where each value was."""

    source: str
    data: Any
    root: yaml.Node | None

    def line(self, loc: Loc) -> int:
        """The line of the deepest part of `loc` the file has: the key of a setting, the start of a
        list item, or the enclosing mapping when `loc` names a setting that is not there."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        for part in loc:
            found = _child(node, part)
            if found is None:
                break
            line, node = found
        return line


def dotted(loc: Loc) -> str:
    """`loc` as an operator writes it: `proxies[0].address`, `dataplane.routing`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def read(path: Path) -> str:
    """The text of the config file at `path`: it must exist, be readable and be UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file (create it, pass --config, or use --redis URL)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not a UTF-8 text file (byte 0x{raw[exc.start]:02x}); is this the fleet config?"
        ) from None


def parse(text: str, source: str) -> Document:
    """`text` parsed as one YAML document; `source` names it in errors."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
        if root is None:
            return Document(source, None, None)
        _refuse_duplicate_keys(root, (), source, set())
        data = _construct(loader, root, source)
    except yaml.reader.ReaderError as exc:
        # e.g. a NUL byte: valid UTF-8, but not text; the default message spans two lines.
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"{source}:{line}: not a text file (character U+{exc.character:04X})") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        said = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"{source}:{line}: invalid YAML: {said}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return Document(source, data, root)


def _construct(loader: yaml.SafeLoader, root: yaml.Node, source: str) -> Any:
    """The data of `root`. PyYAML's constructors raise plain exceptions for some values that look
    like a type but are not (`2024-13-45`, `!!int x`): find that value's line and say so."""
    try:
        return loader.construct_document(root)
    except (ValueError, TypeError, AttributeError) as exc:
        line, problem = _bad_scalar(root) or (root.start_mark.line + 1, str(exc))
        raise ConfigError(f"{source}:{line}: invalid YAML value: {problem}") from None


def _bad_scalar(root: yaml.Node) -> tuple[int, str] | None:
    """The line and complaint of the first scalar under `root` that cannot be constructed."""
    probe = yaml.SafeLoader("")  # fresh: the failed construction left its loader half-way
    pending, seen = [root], set()
    while pending:
        node = pending.pop(0)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                probe.construct_object(node)
            except (ValueError, TypeError, AttributeError, yaml.YAMLError) as exc:
                return node.start_mark.line + 1, f"{node.value!r} ({exc})"
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            pending.extend(part for pair in node.value for part in pair)
    return None


def _child(node: yaml.Node | None, part: int | str) -> tuple[int, yaml.Node] | None:
    """The line of `part` inside `node` (a key's own line) and the node of its value."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key.start_mark.line + 1, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item: yaml.Node = node.value[part]
        return item.start_mark.line + 1, item
    return None


def _refuse_duplicate_keys(node: yaml.Node, loc: tuple[int | str, ...], source: str, seen: set[int]) -> None:
    """A key given twice is an error: YAML would silently keep the last one."""
    if id(node) in seen:  # an alias: already checked, and walking it again could explode
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, (*loc, index), source, seen)
    if not isinstance(node, yaml.MappingNode):
        return
    first: dict[str, int] = {}
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value != "<<":
            line = key.start_mark.line + 1
            if key.value in first:
                where = f"{dotted(loc)}: " if loc else ""
                raise ConfigError(
                    f"{source}:{line}: {where}{key.value!r} is set twice (first on line {first[key.value]})"
                )
            first[key.value] = line
            _refuse_duplicate_keys(value, (*loc, key.value), source, seen)
