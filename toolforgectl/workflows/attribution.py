"""Who makes a change: the operator behind a command, as the audit record names them."""

from __future__ import annotations

import getpass
import os
import socket

from toolforgectl.core import validate
from toolforgectl.core.models import Attribution


def operator(reason: str | None = None, task_id: str | None = None) -> Attribution:
    """The operator running this command, as `user@host`, with their reason and task id.

    The user is the one behind sudo first (as Spicerack names its actors: `sudo toolforgectl`
    is still alice's change, not root's), then the login user.
    """
    return Attribution(
        actor=f"{_user()}@{socket.gethostname()}",
        reason=validate.reason(reason or ""),
        task_id=validate.task_id(task_id or ""),
    )


def _user() -> str:
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and sudo_user != "root":
        return sudo_user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no LOGNAME/USER and a uid without a passwd entry (a bare container)
        return f"uid{os.getuid()}"
