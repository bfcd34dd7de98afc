"""`toolforgectl lab`: run the proxy on this machine, on loopback and without root."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from toolforgectl.cli.context import JsonOpt
from toolforgectl.core import output
from toolforgectl.core.errors import LabError
from toolforgectl.lab import fleet
from toolforgectl.lab.state import load, state_dir

app = typer.Typer(help="Run a Redis, a front proxy and sample tools locally (no root).", no_args_is_help=True)

DirOpt = Annotated[
    Path | None,
    typer.Option("--dir", help="Lab state directory (default: ~/.local/state/toolforgectl/lab)."),
]


@app.command("up")
def up(directory: DirOpt = None, as_json: JsonOpt = False) -> None:
    """Start the lab and print the URLs to try."""
    where = state_dir(directory)
    state = fleet.up(where, progress=output.progress)

    def human(console: Console) -> None:
        proxy = state.proxies[fleet.PROXY_NAME]
        console.print(f"lab is up in {where}", markup=False)
        for tool, info in state.tools.items():
            console.print(f"  tool {tool}:  curl --cacert {proxy['certificate']} {info['url']}", markup=False)
        console.print(f"  tool list: curl {proxy['internal']}/list", markup=False)
        console.print(f"  http->https: curl -i {proxy['http']}/hello/", markup=False)
        console.print(f"  routes:    toolforgectl --config {state.config} routes list", markup=False)
        console.print(f"  history:   toolforgectl --config {state.config} debug history hello", markup=False)
        host, port = proxy["proxylistener"].rsplit(":", 1)
        token = f"{where}/mytool.token"
        console.print(
            f"  your tool: toolforgectl --config {state.config} tools token mytool --write {token}"
            f" && webservice-runner --proxy {host} --proxy-port {port} --own-ip {host}"
            f" --token-file {token} -- python3 -m http.server --bind {host}",
            markup=False,
        )
        console.print(f"  stop:      toolforgectl lab down --dir {where}", markup=False)

    output.emit("lab up", state.as_dict(), as_json=as_json, human=human)


@app.command("status")
def status(directory: DirOpt = None, as_json: JsonOpt = False) -> None:
    """Which lab processes run, and the URLs to try."""
    where = state_dir(directory)
    state = load(where)
    if state is None:
        raise LabError(f"no lab in {where}; start one with: toolforgectl lab up --dir {where}")
    data: dict[str, Any] = state.as_dict()
    for item, record in zip(data["processes"], state.processes, strict=True):
        item["alive"] = record.alive()
    data["running"] = all(item["alive"] for item in data["processes"])

    def human(console: Console) -> None:
        console.print(f"lab in {where}: {'running' if data['running'] else 'DEGRADED'}", markup=False)
        for item in data["processes"]:
            state_word = "up  " if item["alive"] else "DOWN"
            address = f"{item['host']}:{item['port']}"
            console.print(
                f"  {state_word} {item['role']:<6} pid {item['pid']:<7} {address}  {item['name']}",
                markup=False,
            )
        for tool, info in state.tools.items():
            console.print(f"  tool {tool}: {info['url']}", markup=False)

    output.emit("lab status", data, as_json=as_json, human=human)


@app.command("down")
def down(directory: DirOpt = None, as_json: JsonOpt = False) -> None:
    """Stop every process the lab started (by pid) and forget its state."""
    where = state_dir(directory)
    stopped = fleet.down(where)
    data = [{"role": r.role, "name": r.name, "pid": r.pid} for r in stopped]

    def human(console: Console) -> None:
        console.print(f"stopped {len(stopped)} process(es) of the lab in {where}", markup=False)

    output.emit("lab down", data, as_json=as_json, human=human)
