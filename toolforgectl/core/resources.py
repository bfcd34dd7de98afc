"""Where the operator-editable trees (templates/, lua/, playbooks/) are, in a checkout or a wheel."""

from __future__ import annotations

from pathlib import Path

from toolforgectl.core.errors import NotFoundError

_PACKAGE = Path(__file__).resolve().parents[1]  # toolforgectl/, above core/


def resource_dir(name: str) -> Path:
    """The directory `name` (e.g. "templates"): the checkout's top level first, else the wheel's copy."""
    for candidate in (_PACKAGE.parent / name, _PACKAGE / "_shipped" / name):
        if candidate.is_dir():
            return candidate
    raise NotFoundError(f"{name}/ is not in this installation (looked beside and inside {_PACKAGE})")
