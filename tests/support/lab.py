"""A lab of several proxies for a test module: `lab up --proxies N --json`, and `lab down` after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import run_cli


def two_proxy_lab(where: Path) -> AbstractContextManager[dict[str, Any]]:
    """`proxy_lab` with two proxies, as most failover tests want it."""
    return proxy_lab(where, 2)


@contextmanager
def proxy_lab(where: Path, proxies: int, cloud: str = "fake") -> Iterator[dict[str, Any]]:
    """The lab's state (as `lab up --json` prints it, plus its fleet.yaml as `fleet`); on leaving,
    `lab down`, and nothing of the lab may be left. `cloud="openstack"`: a real control plane,
    which takes minutes to start."""
    argv = ["lab", "up", "--dir", str(where), "--proxies", str(proxies), "--cloud", cloud, "--json"]
    up = subprocess.run(
        [sys.executable, "-m", "toolforgectl", *argv],
        capture_output=True, text=True, timeout=300 if cloud == "fake" else 900, check=False,
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        state: dict[str, Any] = json.loads(up.stdout)["data"]
        state["fleet"] = yaml.safe_load(Path(state["config"]).read_text())
        # The lab keeps its proxies in proxies_dir, as deployed ones: the fleet they make.
        listed = sorted(Path(state["fleet"]["proxies_dir"]).glob("*.yaml"))
        state["fleet"]["proxies"] += [yaml.safe_load(path.read_text()) for path in listed]
        yield state
    finally:
        down = run_cli("lab", "down", "--dir", str(where))
    assert down.code == 0, down.stderr
    assert run_cli("lab", "status", "--dir", str(where)).code == 1, "nothing of the lab is left"


def toolforgectl(config: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`toolforgectl --config CONFIG ARGS`, as an operator runs it (no other config is found)."""
    return subprocess.run(
        [sys.executable, "-m", "toolforgectl", "--config", str(config), *args],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "TOOLFORGECTL_CONFIG": "/nonexistent"},
    )  # fmt: skip


def cli(lab: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """`toolforgectl` on the lab's fleet.yaml."""
    return toolforgectl(lab["config"], *args)


def audit_steps(audit: Path) -> list[str]:
    """The steps a playbook run's JSONL audit says finished so far (read while the run writes it)."""
    if not audit.exists():
        return []
    found = []
    for line in audit.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # the line being written as we read
            continue
        if record.get("event") == "step" and "step" in record:
            found.append(record["step"])
    return found
