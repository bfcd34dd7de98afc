"""Where the fleet config is: `--config PATH`, else $TOOLFORGECTL_CONFIG, else the user's file."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "TOOLFORGECTL_CONFIG"
DEFAULT_PATH = Path("~/.config/toolforgectl/config.yaml")


def config_path(option: str | None) -> Path:
    """Where the config file is, from the option, the environment, or the default."""
    chosen = option or os.environ.get(ENV_VAR) or str(DEFAULT_PATH)
    return Path(chosen).expanduser()
