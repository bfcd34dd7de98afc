"""Where the fleet config is: `--config`, else $TOOLFORGECTL_CONFIG, else the user's, else the system's.

The first two are explicit: a path given there must exist (load() says so when it does not). The
last two are implicit, and the first that exists wins: the user's file for an operator's own
fleet, then /etc/toolforgectl/config.yaml, the file the daemons' units read, so that the CLI on a
proxy VM works without flags.
"""

from __future__ import annotations

import os
from pathlib import Path

from toolforgectl.core.errors import ConfigError

ENV_VAR = "TOOLFORGECTL_CONFIG"
SYSTEM_PATH = Path("/etc/toolforgectl/config.yaml")


def user_path() -> Path:
    """$XDG_CONFIG_HOME/toolforgectl/config.yaml, or ~/.config/... when it is unset (or relative,
    which the XDG spec says to ignore)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "toolforgectl" / "config.yaml"


def find(option: str | None) -> Path | None:
    """The config file to load: `option` (--config) if given, else by the documented lookup; None
    when neither is given and no implicit file exists (a daemon then runs on its defaults)."""
    explicit = option or os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    for path in _implicit():
        if os.path.exists(path):  # unlike Path.exists, False on EACCES too
            return path
    return None


def config_path(option: str | None) -> Path:
    """Like find(), but finding nothing is a ConfigError that says where it looked."""
    found = find(option)
    if found is None:
        looked = ", ".join(["--config", f"${ENV_VAR}", *map(str, _implicit())])
        raise ConfigError(f"no fleet config found (looked at {looked}); create one, or use --redis URL")
    return found


def _implicit() -> tuple[Path, Path]:
    return user_path(), SYSTEM_PATH
