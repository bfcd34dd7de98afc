"""`toolforgectl lab`: run the proxy on this machine, on loopback and without root."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolforgectl.cli.context import JsonOpt
from toolforgectl.cli.proxy import print_survey
from toolforgectl.core import output

if TYPE_CHECKING:  # the lab (yaml, redis, nginx rendering) loads when a lab command runs
    from rich.console import Console

    from toolforgectl.lab.state import LabState
    from toolforgectl.workflows.proxies import Survey

app = typer.Typer(
    help="Run the proxy (or several, with replication) and sample tools locally (no root).",
    no_args_is_help=True,
)

DirOpt = Annotated[
    Path | None,
    typer.Option("--dir", help="Lab state directory (default: ~/.local/state/toolforgectl/lab)."),
]

# The tool `lab up` shows how to add by hand, the way a tool's owner would.
YOUR_TOOL = "mytool"


@app.command("up")
def up(
    directory: DirOpt = None,
    proxies: Annotated[
        int,
        typer.Option(
            "--proxies",
            min=1,
            help="How many proxies: 2 or more run proxy-01, proxy-02, ... on 127.0.0.11, 127.0.0.12, ..."
            " (proxy-01 active, the others' Redis replicating from it), each with a kube2proxy.",
        ),
    ] = 1,
    cloud: Annotated[
        str,
        typer.Option(
            "--cloud",
            help="With 2 or more proxies, the cloud their floating IP lives in: `fake` (the lab's own"
            " small OpenStack API) or `openstack` (a real Keystone, Neutron, Nova... started from fresh"
            " databases in the lab's directory; needs scripts/install-openstack.sh once; 2-4 min).",
        ),
    ] = "fake",
    as_json: JsonOpt = False,
) -> None:
    """Start the lab and print the URLs to try."""
    from toolforgectl.lab import fleet
    from toolforgectl.lab.state import state_dir

    where = state_dir(directory)
    state = fleet.up(where, progress=output.progress, proxies=proxies, monitor=True, cloud=cloud)

    def human(console: Console) -> None:
        console.print(f"lab is up in {where}; try:", markup=False)
        for label, command in try_commands(state):
            console.print(f"  {label + ':':<12} {command}", markup=False, highlight=False)

    output.emit("lab up", state.as_dict(), as_json=as_json, human=human)


def try_commands(state: LabState) -> list[tuple[str, str]]:
    """(label, command line) pairs a person can paste into any shell, in the order to try them."""
    from toolforgectl.lab import sampletool
    from toolforgectl.lab.commands import program, quote
    from toolforgectl.lab.plan import LAB_HOST

    proxy = next(iter(state.proxies.values()))  # the first proxy is the active one
    ctl = f"{program('toolforgectl')} --config {quote(state.config)}"
    curl = f"curl --cacert {quote(proxy['certificate'])}"
    lines = [(f"tool {tool}", f"{curl} {info['url']}") for tool, info in state.tools.items()]
    lines += [
        ("tool list", f"curl {proxy['internal']}/list"),
        ("http->https", f"curl -i {proxy['http']}/hello/"),
        ("routes", f"{ctl} routes list"),
        ("history", f"{ctl} debug history hello"),
        ("webservice", f"{program('webservice')} --config {quote(state.config)} --tool hello status"),
        ("monitor", f"{ctl} webservices status"),
    ]
    host, port = proxy["proxylistener"].rsplit(":", 1)
    token = Path(state.dir) / f"{YOUR_TOOL}.token"
    # The sample tool answers every path, so /mytool/ shows what the proxy passed on. Any web
    # server works the same way, if it serves under /mytool/: the proxy keeps the prefix. It runs
    # where the sample tools do (a grid node's address), not on a proxy's.
    server = shlex.join(sampletool.command(YOUR_TOOL, LAB_HOST, "{port}"))
    lines += [
        (
            "your tool",
            f"{ctl} tools token {YOUR_TOOL} --write {quote(token)}"
            f" && {program('webservice-runner')} --proxy {host} --proxy-port {port} --own-ip {LAB_HOST}"
            f" --token-file {quote(token)} -- {server}",
        ),
        ("then", f"{curl} {proxy['https']}/{YOUR_TOOL}/"),
    ]
    if len(state.proxies) > 1:
        lines += _fleet_commands(state, ctl, curl)
    lines.append(("stop", f"{program('toolforgectl')} lab down --dir {quote(state.dir)}"))
    return lines


def _fleet_commands(state: LabState, ctl: str, curl: str) -> list[tuple[str, str]]:
    """What to try with several proxies: the standby, replication, and a Kubernetes Service."""
    from toolforgectl.lab import kubeapi, kubewire
    from toolforgectl.lab.commands import quote

    standby = list(state.proxies.values())[1]
    service = json.dumps(kubeapi.service("tool-kubetool", "kubetool", "127.0.0.1", [("http", 8000)]))
    put = (
        f"curl -X PUT -H 'Authorization: Bearer {kubewire.TOKEN}' --data {quote(service)}"
        f" {state.kube_api}/api/v1/namespaces/tool-kubetool/services/kubetool"
    )
    return [
        ("proxies", f"{ctl} proxy list"),
        ("active", f"{ctl} active-proxy show"),
        ("standby", f"{curl} {standby['https']}/hello/"),
        ("k8s service", f"{put} && {ctl} routes show kubetool --no-probe"),
    ]


@app.command("status")
def status(directory: DirOpt = None, as_json: JsonOpt = False) -> None:
    """Which lab processes run, and the URLs to try."""
    from toolforgectl.core.errors import LabError
    from toolforgectl.lab.commands import program, quote
    from toolforgectl.lab.state import load, state_dir

    where = state_dir(directory)
    state = load(where)
    if state is None:
        start = f"{program('toolforgectl')} lab up --dir {quote(where)}"
        raise LabError(f"no lab in {where}; start one with: {start}")
    data: dict[str, Any] = state.as_dict()
    # The proxy VMs the lab's cloud booted (deploy proxy) keep their records apart (lab/vm.py).
    booted = [vm for path in sorted((where / "vms").glob("*/")) if (vm := load(path)) is not None]
    records = [*state.processes, *(record for vm in booted for record in vm.processes)]
    data["processes"] += [item for vm in booted for item in vm.as_dict()["processes"]]
    for item, record in zip(data["processes"], records, strict=True):
        item["alive"] = record.alive()
    data["running"] = all(item["alive"] for item in data["processes"])
    found = _survey(state.config)
    data["survey"] = found.as_dict() if found else None

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
        if state.cloud:
            console.print(f"  cloud: {describe_cloud(state.cloud)}", markup=False)
        if found:
            print_survey(console, found)

    output.emit("lab status", data, as_json=as_json, human=human)


def describe_cloud(cloud: dict[str, str]) -> str:
    """One line on the lab's cloud: which, where its API answers, its clouds.yaml and its logs."""
    api = cloud.get("keystone") or cloud.get("api", "?")
    kind = (
        "OpenStack (Keystone, Neutron, Nova...)" if cloud.get("kind") == "openstack" else "the lab's fake API"
    )
    return f"{kind} at {api}; clouds.yaml {cloud.get('clouds_yaml', '?')}; logs in {cloud.get('logs', '?')}"


def _survey(config_file: str) -> Survey | None:
    """What `proxy list` says of the lab's fleet; None once its config is gone."""
    from toolforgectl.core import config
    from toolforgectl.workflows import proxies

    path = Path(config_file)
    return proxies.survey(config.load(path)) if path.is_file() else None


@app.command("down")
def down(directory: DirOpt = None, as_json: JsonOpt = False) -> None:
    """Stop every process the lab started (by pid) and forget its state."""
    from toolforgectl.lab import fleet
    from toolforgectl.lab.state import state_dir

    where = state_dir(directory)
    stopped = fleet.down(where)
    data = [{"role": r.role, "name": r.name, "pid": r.pid} for r in stopped]

    def human(console: Console) -> None:
        console.print(f"stopped {len(stopped)} process(es) of the lab in {where}", markup=False)

    output.emit("lab down", data, as_json=as_json, human=human)
