"""The building blocks of the config's schema, and pydantic's complaints turned into one line.

Every section is a frozen pydantic dataclass with `extra="forbid"`, so a misspelt key anywhere is
an error instead of a silent default. Containers are validated leniently (a YAML list becomes a
tuple, a mapping a section) but every leaf is strict: `port: "80"` and `port: true` are refused,
as is `name: 5`; only the nginx size and count settings take a number for text (`Nginx`).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import AfterValidator, BeforeValidator, ConfigDict, StrictFloat, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

from toolforgectl.core import validate
from toolforgectl.core.config.document import Document, Loc, dotted
from toolforgectl.core.errors import ConfigError, ValidationError

# defer_build: the validators are built on first use, not at import, so a command that imports the
# config but never reads it (--help) does not pay for them.
SECTION = ConfigDict(extra="forbid", defer_build=True)

N = TypeVar("N", int, float)
S = TypeVar("S")


def invalid(predicate: str) -> PydanticCustomError:
    """A problem with one value; `predicate` reads after the setting's name ("must be positive")."""
    return PydanticCustomError("config", predicate)


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise invalid("must be a port number (1-65535)")
    return value


def _port_or_off(value: int) -> int:
    if not 0 <= value <= 65535:
        raise invalid("must be a port number (1-65535), or 0 for off")
    return value


def _positive(value: N) -> N:
    if value <= 0:
        raise invalid("must be positive")
    return value


def _not_negative(value: int) -> int:
    if value < 0:
        raise invalid("must be 0 (off) or positive")
    return value


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise invalid(f"must be a network such as 172.16.0.0/21, not {value!r}") from None
    return value


def _number_as_text(value: object) -> object:
    # nginx reads `worker_processes 4;` and `4;` alike, so YAML's 4 means the same as "4".
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _empty_is_default(value: object) -> object:
    # `dataplane:` with every key commented out is YAML null: the section's defaults.
    return {} if value is None else value


def one_of(*choices: str) -> AfterValidator:
    """A text setting that must be one of `choices`."""

    def check(value: str) -> str:
        if value not in choices:
            raise invalid(f"must be one of {', '.join(choices)}")
        return value

    return AfterValidator(check)


def domain(*, optional: bool = False) -> AfterValidator:
    """A host name setting (dotted lowercase DNS labels); with `optional`, empty (off) too."""

    def check(value: str) -> str:
        if value or not optional:
            try:
                validate.domain_name(value)
            except ValidationError as exc:
                raise invalid(f"is not a usable domain name: {exc}") from None
        return value

    return AfterValidator(check)


Text = StrictStr
Texts = tuple[StrictStr, ...]
Port = Annotated[StrictInt, AfterValidator(_port)]
PortOrOff = Annotated[StrictInt, AfterValidator(_port_or_off)]
Count = Annotated[StrictInt, AfterValidator(_positive)]
CountOrOff = Annotated[StrictInt, AfterValidator(_not_negative)]
Seconds = Annotated[StrictFloat, AfterValidator(_positive)]
Networks = tuple[Annotated[StrictStr, AfterValidator(_network)], ...]
Nginx = Annotated[StrictStr, BeforeValidator(_number_as_text)]
EMPTY_IS_DEFAULT = BeforeValidator(_empty_is_default)


_KINDS = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "tuple_type": "a list",
    "dataclass_type": "a mapping",
    "dict_type": "a mapping",
}
_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden", "invalid_key")


def problem(exc: pydantic.ValidationError, doc: Document, root: type, prefix: Loc = ()) -> ConfigError:
    """The first problem (by line) of `exc` as one `file:line: message` ConfigError; `root` is the
    class `doc` was validated as, for suggesting the setting a misspelt key meant. `prefix` is
    where in `doc` the validated value sits, when it is a part of it (a playbook step's options)."""
    # On one line, an unknown key goes first: `adress:` explains the `address` that is "missing".
    found = [
        (doc.line((*prefix, *error["loc"])), error["type"] not in _UNKNOWN, index, error)
        for index, error in enumerate(exc.errors())
    ]
    line, _, _, error = min(found, key=lambda item: item[:3])
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return ConfigError(f"{doc.source}:{line}: {_describe(error, root, prefix)}{more}")


def overridden(settings: S, source: str, **changes: Any) -> S:
    """`settings` with `changes` applied and checked like the file's values; a bad value is one
    ConfigError naming `source` (e.g. "command line") and the setting."""
    try:
        return dataclasses.replace(settings, **changes)  # type: ignore[type-var]
    except pydantic.ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc.errors()[0], type(settings))}") from None


def _describe(error: Any, root: type, prefix: Loc = ()) -> str:
    """One error of pydantic's in the operator's words, naming the setting by its path."""
    loc, kind = tuple(error["loc"]), error["type"]
    where = dotted((*prefix, *loc))
    if kind in _UNKNOWN:
        key, parent = str(loc[-1]), loc[:-1]
        guess = difflib.get_close_matches(key, _settings_of(root, parent), n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        named = dotted((*prefix, *parent))
        return f"{named + ': ' if named else ''}unknown setting {key!r}{hint}"
    if kind == "missing":
        return f"{where} is required"
    if kind in _KINDS:
        return f"{where} must be {_KINDS[kind]}, not {_kind_of(error['input'])}"
    if kind == "config":
        return f"{where} {error['msg']}"
    return f"{where}: {error['msg']}"


def _kind_of(value: object) -> str:
    kinds: tuple[tuple[type, str], ...] = (
        (bool, "true/false"),  # before int: a bool is an int to Python, not to an operator
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "a list"),
        (dict, "a mapping"),
        (type(None), "empty"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def _settings_of(cls: Any, loc: Loc) -> Iterable[str]:
    """The settings the section at `loc` below `cls` takes (none if `loc` leaves the schema)."""
    for part in loc:
        if isinstance(part, str):
            fields = getattr(cls, "__pydantic_fields__", {})
            if part not in fields:
                return ()
            cls = fields[part].annotation
        if typing.get_origin(cls) is tuple:  # proxies: tuple[Proxy, ...]
            cls = typing.get_args(cls)[0]
        if isinstance(cls, types.UnionType):  # an optional section: cloud: Cloud | None
            cls = next(arg for arg in typing.get_args(cls) if arg is not type(None))
    fields = getattr(cls, "__pydantic_fields__", {})
    return [name for name, field in fields.items() if not field.exclude]  # exclude: not from the file
