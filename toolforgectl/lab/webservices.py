"""The lab's tools as webservices: `webservice start` on the local backend, and webservicemonitor.

The lab's fleet.yaml gets a `webservice:` section (tool homes under `<lab>/homes/<tool>`, the
local backend, registration with the lab's proxylistener, a restart command that runs this
install's `webservice`). Each sample tool gets a home with its token and is started the way a
tool's owner starts one, with `webservice --tool TOOL generic start -- <sample tool>`; the
monitor then keeps it up: kill a tool's processes and it is back within one interval.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from toolforgectl.adapters import probe
from toolforgectl.adapters.localjobs import LOG_NAME, LocalJobs
from toolforgectl.adapters.processes import START_TIMEOUT, Process, spawn
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import tokens, validate
from toolforgectl.core.errors import LabError
from toolforgectl.core.jobs import Job, job_name
from toolforgectl.core.waiting import wait_until
from toolforgectl.lab import sampletool

INTERVAL = 30.0  # the lab's monitor pass interval: a killed tool is back within this
WEBSERVICE = [sys.executable, "-m", "toolforgectl.daemons.clients.webservice"]
MONITOR = [sys.executable, "-m", "toolforgectl.daemons.webservicemonitor.main"]


def configure(directory: Path, proxy_address: str, proxy_port: int) -> None:
    """Add the `webservice:` section to the lab's fleet.yaml: tools register with the
    proxylistener at `proxy_address:proxy_port` (the active proxy's)."""
    path = directory / "fleet.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    restart = [*WEBSERVICE, "--config", str(path), "--tool", "{tool}", "--backend", "{backend}", "restart"]
    data["webservice"] = {
        **data.get("webservice", {}),  # the metrics address and port plan.write chose
        "home": str(directory / "homes" / "{tool}"),
        "default_backend": "local",
        "local_spool": str(directory / "webservice-jobs"),
        "proxy": proxy_address,
        "proxy_port": proxy_port,
        "restart_command": restart,
        "state_file": str(directory / "webservicemonitor.json"),
        "interval": INTERVAL,
    }
    text = "# Written by `toolforgectl lab up`.\n" + yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")


def start_tool(
    directory: Path, key: Path, store: RouteStore, tool: str, host: str, sample_args: tuple[str, ...]
) -> tuple[Process, str]:
    """Start sample tool `tool` with `webservice start`; its runner's process and its backend URL."""
    home = directory / "homes" / tool
    home.mkdir(parents=True, exist_ok=True)
    tokens.write_secret(home / ".proxylistener-token", tokens.mint(tokens.load_key(key), tool, 0).encode())
    command = [*sampletool.command(tool, host, "{port}"), *sample_args]
    argv = [*WEBSERVICE, "--config", str(directory / "fleet.yaml"), "--tool", tool, "generic", "start"]
    done = subprocess.run([*argv, "--", *command], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise LabError(f"webservice start of {tool} failed: {done.stderr.strip()}")
    jobs, name = LocalJobs(directory / "webservice-jobs"), job_name("generic", tool)

    def job() -> Job:
        found = next((j for j in jobs.jobs() if j.name == name), None)
        if found is None:
            raise LabError(f"{tool}'s job exited during start (see {home / LOG_NAME})")
        return found

    def serving() -> str | None:
        # The tool's route may be one an earlier lab in this directory left behind (its runner
        # could not unregister: Redis was down, or the job was killed), and the runner registers
        # before its server listens: only a route whose server answers is this job's, ready.
        backend = store.routes(tool).get(".*")
        if backend and probe.tcp_connect(backend, timeout=0.2).reachable:
            return backend
        job()  # raises once the job has died: nothing to wait for then
        return None

    backend = str(wait_until(serving, f"{tool} to register and answer", START_TIMEOUT, error=LabError))
    port = validate.backend(backend).port
    return Process(f"tool {tool}", int(job().number), host, port, home / LOG_NAME), backend


def start_monitor(directory: Path, host: str) -> Process:
    """webservicemonitor for the lab, answering on its metrics port once it runs."""
    config = directory / "fleet.yaml"
    port = int(yaml.safe_load(config.read_text(encoding="utf-8"))["webservice"]["metrics_port"])
    argv = [*MONITOR, "--config", str(config)]
    return spawn("webservicemonitor", argv, directory / "webservicemonitor.log", host, port)


def stop_jobs(directory: Path) -> None:
    """Stop every local webservice job (also those the monitor restarted), while the lab's
    proxylistener still runs to take their unregistrations."""
    LocalJobs(directory / "webservice-jobs").stop_all()
