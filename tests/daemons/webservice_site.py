"""A fleet of tool homes for the webservice tests: a config file, homes with tokens, and the commands."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.daemons.regstack import BIN, Listener, venv_env


def sample(tool: str) -> list[str]:
    """The sample tool's command as a `generic` webservice (webservice-runner fills in {port})."""
    return [sys.executable, "-m", "toolforgectl.lab.sampletool", "--name", tool, "--port", "{port}"]


@dataclass
class Site:
    """Tool homes under `tmp/homes`, and the fleet config that names them."""

    tmp: Path
    config: Path
    listener: Listener | None

    def home(self, tool: str) -> Path:
        return self.tmp / "homes" / tool

    def add_tool(self, tool: str) -> Path:
        """A tool home holding the tool's proxylistener token."""
        home = self.home(tool)
        home.mkdir(parents=True, exist_ok=True)
        if self.listener is not None:
            token = home / ".proxylistener-token"
            token.write_text(self.listener.token(tool) + "\n")
            token.chmod(0o600)
        return home

    def webservice(
        self, tool: str, *words: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `webservice --tool TOOL WORDS...` against this site's config."""
        argv = [str(BIN / "webservice"), "--config", str(self.config), "--tool", tool, *words]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=120, check=False, env={**venv_env(), **(env or {})}
        )

    def status(self, tool: str) -> dict[str, Any]:
        done = self.webservice(tool, "--json", "status")
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)["data"]
        return data


def make_site(tmp: Path, listener: Listener | None = None, **settings: Any) -> Site:
    """The config of a fleet whose tools live under `tmp/homes` and register with `listener`."""
    section: dict[str, Any] = {
        "home": str(tmp / "homes" / "{tool}"),
        "local_spool": str(tmp / "spool"),
        "default_backend": "local",
        "proxy": "127.0.0.1",
        "state_file": str(tmp / "monitor-state.json"),
        "stop_timeout": 20.0,
    }
    if listener is not None:
        section["proxy_port"] = listener.port
    section.update(settings)
    fleet = {
        "proxies": [{"name": "proxy-01", "address": "127.0.0.1"}],
        "dataplane": {"allow_loopback_backends": True},
        "webservice": section,
    }
    config = tmp / "fleet.yaml"
    config.write_text(yaml.safe_dump(fleet))
    return Site(tmp, config, listener)


def get(url: str) -> str | None:
    """The body at `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as page:
            return str(page.read().decode())
    except OSError:
        return None
