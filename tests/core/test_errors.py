"""The one error tree: every exception class of the package is in it, and its docstring draws it all."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import toolforgectl
from toolforgectl.core import errors
from toolforgectl.core.errors import ToolforgectlError

# A stop request, not an error: it must get past the client libraries' `except Exception`.
NOT_ERRORS = {"toolforgectl.daemons.kube2proxy.main.Stopped"}


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in pkgutil.walk_packages(toolforgectl.__path__, "toolforgectl."):
        if module.name.endswith("__main__"):
            continue  # running it would start the program
        loaded = importlib.import_module(module.name)
        for name, value in vars(loaded).items():
            is_exception = inspect.isclass(value) and issubclass(value, BaseException)
            if is_exception and value.__module__ == module.name:
                found[f"{module.name}.{name}"] = value
    return found


def test_every_exception_class_is_in_the_tree_and_declared_in_errors_py() -> None:
    strays = []
    for where, cls in _exception_classes().items():
        private = cls.__name__.startswith("_")
        if where in NOT_ERRORS:
            continue
        if not issubclass(cls, ToolforgectlError) or not (private or cls.__module__ == errors.__name__):
            strays.append(where)

    assert strays == [], "declare these in core/errors.py (or make them private control flow of the root)"


def test_the_docstring_draws_every_public_error_class() -> None:
    classes = [(name, cls) for name, cls in vars(errors).items() if inspect.isclass(cls)]
    public = [name for name, cls in classes if issubclass(cls, Exception)]
    doc = errors.__doc__ or ""

    drawn = [line.lstrip("│├└─ ").split(" ", 1)[0] for line in doc.splitlines()]

    assert [name for name in public if name not in drawn] == []
