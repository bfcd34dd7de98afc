"""Which modules hold the package's steps: importing them registers every step a playbook may name.

A new operation's steps go in their own workflows module, listed here once.
"""

from __future__ import annotations

import importlib

STEP_MODULES = (
    "toolforgectl.workflows.hiera",
    "toolforgectl.workflows.converge",
    "toolforgectl.workflows.failover",
    "toolforgectl.workflows.dnsrecord",
    "toolforgectl.workflows.deploy",
    "toolforgectl.workflows.remove",
)


def load() -> None:
    """Import every step module (each registers its steps with steps.register)."""
    for name in STEP_MODULES:
        importlib.import_module(name)
