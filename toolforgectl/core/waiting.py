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


def with_retries(
    action: Callable[[], T],
    *,
    tries: int,
    delay: float,
    backoff: float = 2.0,
    max_delay: float = 60.0,
    on_retry: Callable[[int, ToolforgectlError], None] = lambda _attempt, _error: None,
) -> T:
    """Call `action` until it returns without raising a ToolforgectlError, at most `tries` times.

    Between tries it waits `delay` seconds, then `delay * backoff`, and so on up to `max_delay`
    (a condition that needs time, such as replication catching up, gets it without hammering).
    `on_retry(attempt, error)` hears about each failed try before the wait; the last error is
    raised as it is.
    """
    attempt, pause = 1, delay
    while True:
        try:
            return action()
        except ToolforgectlError as error:
            if attempt >= tries:
                raise
            on_retry(attempt, error)
        time.sleep(min(pause, max_delay))
        attempt, pause = attempt + 1, pause * backoff
