"""Parsing one optional settings section of the fleet config into its frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from toolforgectl.core.errors import ConfigError

S = TypeVar("S")
_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def parse_section(cls: type[S], name: str, item: Any, source: str) -> S:
    """`cls` built from the mapping `item` (None: all defaults): unknown keys are refused and
    each value must have its default's type; `source` names the file in errors."""
    if item is None:
        return cls()
    if not isinstance(item, Mapping):
        raise ConfigError(f"{source}: '{name}' must be a mapping")
    defaults = cls()
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(item) - known
    if unknown:
        raise ConfigError(f"{source}: {name}: unknown setting(s): {', '.join(sorted(map(str, unknown)))}")
    values = {
        key: _typed(f"{name}.{key}", value, getattr(defaults, key), source) for key, value in item.items()
    }
    return cls(**values)


def _typed(name: str, value: Any, default: Any, source: str) -> Any:
    """`value` if it has the type of `default`: an int passes as a float or a string (e.g.
    `worker_processes: 4`), a list of strings as a tuple; a bool never passes as a number."""
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: {name} must be a list of strings")
        return tuple(value)
    if value is None and default is None:
        return None
    wanted = str if default is None else type(default)
    if wanted in (float, str) and isinstance(value, int) and not isinstance(value, bool):
        return wanted(value)
    if isinstance(value, bool) != (wanted is bool) or not isinstance(value, wanted):
        raise ConfigError(f"{source}: {name} must be {_KINDS.get(wanted, wanted.__name__)}")
    return value
