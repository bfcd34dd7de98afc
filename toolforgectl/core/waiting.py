"""Waiting for a condition to come true: the one poll loop, for the package and its tests alike.

A wait names what it waits for, so that a timeout says which condition never came; it polls at a
fixed interval against a monotonic deadline. Code that waits on purpose (a port opening, a route
arriving, a process going) uses this rather than a sleep of a guessed length.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from toolforgectl.core.errors import TimedOutError, ToolforgectlError

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    what: str,
    timeout: float = 30.0,  # generous: a loaded 2-core CI machine starts Python daemons slowly
    interval: float = 0.05,
    error: type[ToolforgectlError] = TimedOutError,
) -> T:
    """Poll `check` until it returns something truthy and return that.

    After `timeout` seconds, raise `error` saying it timed out waiting for `what`. Whatever `check`
    raises goes through unchanged, so a check can fail early (a server that exited during start).
    """
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
