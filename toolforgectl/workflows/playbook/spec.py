"""The playbook format (playbooks/<operation>.yaml): load a file, check it whole, or say `file:line:`.

    name: hiera-set                   # the operation; must be the file's name
    description: Set one hiera key.
    lock: hiera                       # optional: the lock's name (default: the operation's)
    arguments: {key: the hiera key}   # what the command must pass, for `playbooks show`
    preflight:                        # check-only steps, all run before anything changes
      - step: hiera-readable
    steps:                            # in order
      - step: set-hiera-key
        id: set-key                   # optional: needed when a step appears twice
        retries: 2                    # more verify attempts when it fails, with backoff:
        delay: 1.0                    #   seconds before the first retry,
        backoff: 2.0                  #   multiplied by this each time
        timeout: 60                   # seconds the step's own waits may take
        hosts: proxies                # optional: the host group it acts on (remote.groups)
        batch: 10                     # optional: hosts per batch
        point_of_no_return: false     # true: from this step on, no automatic rollback
        options: {}                   # the step's own, typed by the step (steps.register)

Checked: unknown keys, types, every step registered, options valid for their step, unique ids,
that the steps before the point of no return can roll back and the others give instructions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, Field, StrictBool
from pydantic.dataclasses import dataclass as schema_dataclass

from toolforgectl.core.config import document, schema
from toolforgectl.core.config.document import Document
from toolforgectl.core.config.schema import SECTION, Count, CountOrOff, Seconds, Text, invalid
from toolforgectl.core.errors import ConfigError, NotFoundError, PlaybookError
from toolforgectl.core.resources import resource_dir
from toolforgectl.workflows.playbook import catalog, steps

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise invalid("must be lowercase letters, digits and '-' (at most 63)")
    return value


def _at_least_one(value: float) -> float:
    if value < 1:
        raise invalid("must be 1 or more (the factor each retry's wait grows by)")
    return value


Name = Annotated[Text, AfterValidator(_name)]


@schema_dataclass(frozen=True, config=SECTION)
class _Entry:
    step: Name
    id: Name | None = None
    retries: CountOrOff = 0
    delay: Seconds = 1.0
    backoff: Annotated[float, Field(strict=True), AfterValidator(_at_least_one)] = 2.0
    timeout: Seconds = 60.0
    hosts: Text = ""
    batch: Count | None = None
    point_of_no_return: StrictBool = False
    skip_on_resume: StrictBool = False
    options: dict[str, Any] | None = None


@schema_dataclass(frozen=True, config=SECTION)
class _Playbook:
    name: Name
    steps: tuple[_Entry, ...]
    description: Text = ""
    lock: Name | None = None
    arguments: dict[Text, Text] | None = None
    preflight: tuple[_Entry, ...] = ()


_PLAYBOOK = pydantic.TypeAdapter(_Playbook)


@dataclass(frozen=True)
class Entry:
    """One step of a playbook, checked: its registered type and its typed options."""

    id: str
    kind: steps.StepType
    options: Any
    retries: int
    delay: float
    backoff: float
    timeout: float
    hosts: str
    batch: int | None
    point_of_no_return: bool
    skip_on_resume: bool
    line: int

    @property
    def step(self) -> str:
        """The registered name of the step."""
        return self.kind.name

    def as_dict(self) -> dict[str, Any]:
        """The JSON form `playbooks show` prints."""
        options = {}
        if self.options is not None:
            options = pydantic.TypeAdapter(type(self.options)).dump_python(self.options, mode="json")
        return {
            "id": self.id,
            "step": self.step,
            "summary": self.kind.summary,
            "retries": self.retries,
            "delay": self.delay,
            "backoff": self.backoff,
            "timeout": self.timeout,
            "hosts": self.hosts,
            "batch": self.batch,
            "point_of_no_return": self.point_of_no_return,
            "skip_on_resume": self.skip_on_resume,
            "options": options,
        }


@dataclass(frozen=True)
class Playbook:
    """An operation's steps, loaded from its YAML file and checked whole."""

    name: str
    description: str
    lock: str
    arguments: dict[str, str]
    preflight: tuple[Entry, ...]
    steps: tuple[Entry, ...]
    path: Path

    def as_dict(self) -> dict[str, Any]:
        """The JSON form `playbooks show` prints."""
        return {
            "name": self.name,
            "description": self.description,
            "lock": self.lock,
            "arguments": self.arguments,
            "path": str(self.path),
            "preflight": [entry.as_dict() for entry in self.preflight],
            "steps": [entry.as_dict() for entry in self.steps],
        }


def directory() -> Path:
    """The playbooks/ of this checkout or installation."""
    return resource_dir("playbooks")


def paths(where: Path | None = None) -> list[Path]:
    """Every playbook file in `where` (default: directory()), sorted by name."""
    folder = where or directory()
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def find(name: str, where: Path | None = None) -> Playbook:
    """The playbook of operation `name`; NotFoundError listing the known ones."""
    for path in paths(where):
        if path.stem == name:
            return load(path)
    known = ", ".join(path.stem for path in paths(where)) or "none"
    raise NotFoundError(f"no playbook named {name!r} (known: {known})")


def load(path: Path) -> Playbook:
    """Read and check the playbook at `path`; any problem is one PlaybookError `file:line: message`."""
    catalog.load()
    try:
        doc = document.parse(document.read(path), str(path))
    except ConfigError as exc:
        raise PlaybookError(str(exc).replace("config file", "playbook")) from None
    if not isinstance(doc.data, dict):
        raise PlaybookError(f"{path}:{doc.line(())}: expected a mapping (name, steps, ...) at the top level")
    try:
        raw = _PLAYBOOK.validate_python(doc.data)
    except pydantic.ValidationError as exc:
        raise PlaybookError(str(schema.problem(exc, doc, _Playbook))) from None
    if raw.name != path.stem:
        raise PlaybookError(
            f"{path}:{doc.line(('name',))}: name {raw.name!r} must be the file's name, {path.stem!r}"
        )
    preflight = tuple(_entry(doc, "preflight", i, e) for i, e in enumerate(raw.preflight))
    main = tuple(_entry(doc, "steps", i, e) for i, e in enumerate(raw.steps))
    _check_ids(doc, (*preflight, *main))
    _check_roles(doc, preflight, main)
    return Playbook(
        raw.name, raw.description, raw.lock or raw.name, dict(raw.arguments or {}), preflight, main, path
    )


def _entry(doc: Document, section: str, index: int, raw: _Entry) -> Entry:
    where = (section, index)
    kind = steps.lookup(raw.step)
    if kind is None:
        known = ", ".join(steps.known())
        raise PlaybookError(
            f"{doc.source}:{doc.line((*where, 'step'))}: unknown step {raw.step!r} (known: {known})"
        )
    return Entry(
        id=raw.id or raw.step,
        kind=kind,
        options=_options(doc, where, kind, raw.options),
        retries=raw.retries,
        delay=raw.delay,
        backoff=raw.backoff,
        timeout=raw.timeout,
        hosts=raw.hosts,
        batch=raw.batch,
        point_of_no_return=raw.point_of_no_return,
        skip_on_resume=raw.skip_on_resume,
        line=doc.line(where),
    )


def _options(doc: Document, where: tuple[str, int], kind: steps.StepType, raw: dict[str, Any] | None) -> Any:
    if kind.options is None:
        if raw:
            line = doc.line((*where, "options"))
            raise PlaybookError(f"{doc.source}:{line}: step {kind.name!r} takes no options")
        return None
    try:
        return pydantic.TypeAdapter(kind.options).validate_python(raw or {})
    except pydantic.ValidationError as exc:
        raise PlaybookError(str(schema.problem(exc, doc, kind.options, (*where, "options")))) from None


def _check_ids(doc: Document, entries: tuple[Entry, ...]) -> None:
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.id in seen:
            raise PlaybookError(
                f"{doc.source}:{entry.line}: step id {entry.id!r} is used twice (first on line"
                f" {seen[entry.id]}); give one of them an `id:`"
            )
        seen[entry.id] = entry.line


def _check_roles(doc: Document, preflight: tuple[Entry, ...], main: tuple[Entry, ...]) -> None:
    """Each entry must be able to do what its place asks of it."""
    for entry in preflight:
        if entry.point_of_no_return:
            raise PlaybookError(
                f"{doc.source}:{entry.line}: a preflight check cannot be the point of no return"
            )
    past = False
    for entry in main:
        if entry.skip_on_resume:
            raise PlaybookError(f"{doc.source}:{entry.line}: skip_on_resume is for preflight checks only")
        cls = entry.kind.cls
        if not all(callable(getattr(cls, name, None)) for name in ("apply", "verify")):
            raise PlaybookError(
                f"{doc.source}:{entry.line}: step {entry.step!r} only checks; put it under `preflight:`"
            )
        past = past or entry.point_of_no_return
        if not past and not callable(getattr(cls, "rollback", None)):
            raise PlaybookError(
                f"{doc.source}:{entry.line}: step {entry.step!r} cannot roll back, so it must come at or"
                " after a step marked `point_of_no_return: true`"
            )
        if past and not callable(getattr(cls, "instructions", None)):
            raise PlaybookError(
                f"{doc.source}:{entry.line}: step {entry.step!r} is past the point of no return but gives"
                " no operator instructions"
            )
