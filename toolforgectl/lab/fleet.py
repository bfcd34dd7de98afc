"""`toolforgectl lab up|down`: one or more proxies (each a Redis, nginx + Lua and proxylistener;
with two or more, a kube2proxy each against one lab Kubernetes API) and sample tools.

Each proxy's files (nginx, urlproxy settings, redis.conf) are rendered from templates/ as for a
proxy VM; its Redis runs from that redis.conf, so a standby's replicates from the active one's.
lab/plan.py says which proxies, addresses and ports, and writes the lab's config files.

Sample tools come up the way a tool's owner starts a webservice, with `webservice start` on the
local backend (lab/webservices.py): each runs under `webservice-runner`, which registers it with
the lab's proxylistener over the real 8282 protocol (token identity) and unregisters it when the
lab stops it. With `monitor`, webservicemonitor keeps them up.

A lab of several proxies has a cloud (lab/operations.py): its own small OpenStack API, or, with
`cloud="openstack"`, a real control plane (lab/openstacklab.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from toolforgectl.adapters import nginx as frontproxy
from toolforgectl.adapters.processes import spawn, start_redis_from
from toolforgectl.adapters.render import Layout
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import config
from toolforgectl.core.errors import LabError, UsageError
from toolforgectl.core.waiting import wait_until
from toolforgectl.lab import commands, openstacklab, operations, plan, webservices
from toolforgectl.lab.plan import LAB_HOST, PROXY_NAME
from toolforgectl.lab.state import LabState, ProcessRecord, load, remove

__all__ = ["LAB_HOST", "PROXY_NAME", "SAMPLE_TOOLS", "down", "up"]

SAMPLE_TOOLS = ("hello", "echo")
VMS = "vms"  # <dir>/vms/<name>/: the processes of each proxy "VM" the lab's cloud booted (lab/vm.py)


def up(
    directory: Path,
    tools: tuple[str, ...] = SAMPLE_TOOLS,
    dataplane: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] = lambda _: None,
    sample_args: tuple[str, ...] = (),
    proxies: int = 1,
    monitor: bool = False,
    cloud: str = "fake",
) -> LabState:
    """Start the lab in `directory` with `proxies` proxies (lab/plan.py); on any failure, stop
    what was started and raise.

    `sample_args` go on every sample tool's command line (lab/sampletool.py's options); with
    `monitor`, webservicemonitor runs too and restarts tools that die. `cloud`: "fake" (the lab's
    own API) or "openstack" (a real control plane; two proxies or more)."""
    if cloud not in operations.CLOUDS:
        raise UsageError(f"the lab's cloud is one of {', '.join(operations.CLOUDS)}, not {cloud!r}")
    if cloud == "openstack":
        if proxies < 2:
            raise UsageError("--cloud openstack needs --proxies 2 or more (one proxy has no cloud)")
        openstacklab.installed_venv()  # before anything starts: one line saying what to run
    _refuse_if_running(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = LabState(dir=str(directory), config=str(directory / "fleet.yaml"))
    try:
        _start_all(state, directory, tools, dataplane or {}, progress, sample_args, proxies, monitor, cloud)
    except BaseException:
        down(directory)
        raise
    return state


def down(directory: Path) -> list[ProcessRecord]:
    """Stop every process the lab in `directory` started, newest first; returns what was stopped."""
    stopped = [record for vm in sorted((directory / VMS).glob("*/")) for record in down(vm)]
    state = load(directory)
    if state is None:
        return stopped
    monitors = [r for r in state.processes if r.role == "webservicemonitor" and r.running()]
    for record in monitors:  # first, or it restarts the tools being stopped
        record.stop()
    webservices.stop_jobs(directory)
    signalled = openstacklab.stop_services(state.processes)
    for record in reversed(state.processes):
        if record.running():  # its pid, or what it started: a runner SIGKILLed leaves its server
            record.stop()
            stopped += [] if record in signalled else [record]
    stopped += signalled
    remove(directory)
    return stopped


def _refuse_if_running(directory: Path) -> None:
    state = load(directory)
    if state is None:
        return
    if any(record.running() for record in state.processes):  # a leftover child counts: down stops it
        stop = f"{commands.program('toolforgectl')} lab down --dir {commands.quote(directory)}"
        raise LabError(f"a lab already runs in {directory}; stop it with: {stop}")
    remove(directory)


def _start_all(
    state: LabState,
    directory: Path,
    tools: tuple[str, ...],
    dataplane: Mapping[str, Any],
    progress: Callable[[str], None],
    sample_args: tuple[str, ...],
    count: int,
    monitor: bool,
    cloud: str,
) -> None:
    proxies = plan.members(count)
    found = plan.ports(proxies)
    key = directory / "proxylistener" / "key"
    sections = operations.sections(directory, proxies, found, cloud) if count > 1 else {}
    # With several proxies the public address is the floating IP: the certificate names it too.
    addresses = tuple(proxy.address for proxy in proxies) + ((plan.FLOATING_IP,) if count > 1 else ())
    cert, tls_key = frontproxy.self_signed(directory / "tls", "proxy" if count == 1 else "proxies", addresses)
    # In fleet.yaml, so that what converge renders from it is what the lab started with.
    tls = {"tls_certificate": str(cert), "tls_key": str(tls_key)}
    fleet = plan.write(directory, proxies, found, key, {**tls, **dataplane}, sections)
    layouts = {p.name: frontproxy.render_into(fleet, p.name, directory / p.name) for p in proxies}
    for proxy in proxies:
        start_redis(state, proxy, found.redis, layouts[proxy.name], progress)
    for proxy in proxies[1:]:
        wait_replicating(proxy, plan.redis_url(proxy, found), progress)
    for proxy in proxies:
        start_proxy(state, proxy, layouts[proxy.name], fleet, cert, progress)
        start_listener(state, directory, proxy, fleet, progress)
    if count > 1:
        _start_kube(state, directory, proxies, found, progress)
        operations.start(state, directory, proxies, found, progress, cloud)
    active = proxies[0]
    store = RouteStore.from_url(plan.redis_url(active, found))
    # The tools' public URLs: through the floating IP when there is one, as visitors reach them.
    base = f"https://{plan.FLOATING_IP}:{found.https}" if count > 1 else state.proxies[active.name]["https"]
    webservices.configure(directory, active.address, fleet.proxylistener.port)
    for tool in tools:
        progress(f"lab: starting sample tool {tool} with `webservice start` (registers over 8282)")
        process, backend = webservices.start_tool(directory, key, store, tool, LAB_HOST, sample_args)
        marks = ["webservice-runner", str(directory / "homes" / tool)]
        _record(state, ProcessRecord.of("tool", process, marks, tool=tool))
        state.tools[tool] = {"backend": backend, "url": f"{base}/{tool}/"}
    if monitor:
        progress("lab: starting webservicemonitor (restarts tools that die)")
        started = webservices.start_monitor(directory, LAB_HOST)
        marks = ["toolforgectl.daemons.webservicemonitor.main", str(directory)]
        _record(state, ProcessRecord.of("webservicemonitor", started, marks))
    state.hiera = str(directory / plan.HIERA_FILE)
    state.save()


def start_redis(
    state: LabState, proxy: plan.Member, port: int, layout: Layout, progress: Callable[[str], None]
) -> None:
    """`proxy`'s Redis from its rendered redis.conf (a standby's has `replicaof` the active's)."""
    where = f"{proxy.address}:{port}"
    progress(
        f"lab: starting redis-server of {proxy.name} (conf/redis.conf rendered from templates/) on {where}"
    )
    redis = start_redis_from(
        layout.conf_dir / "redis.conf", proxy.address, port, layout.log_dir / "redis.log"
    )
    # redis-server shows "redis-server <address>:<port>" as its command line, not its arguments.
    _record(state, ProcessRecord.of("redis", redis, ["redis-server", where], proxy=proxy.name))


def wait_replicating(proxy: plan.Member, redis: str, progress: Callable[[str], None]) -> None:
    """Return once a standby's Redis (at URL `redis`) has synced from the active one's and
    written its AOF."""
    progress(f"lab: waiting for the Redis of {proxy.name} to replicate from the active proxy's")
    store = RouteStore.from_url(redis)
    what = f"the Redis of {proxy.name} to sync (see {proxy.name}/logs/redis.log)"
    wait_until(lambda: store.replication().link_up and not store.aof_rewriting(), what, error=LabError)


def start_proxy(
    state: LabState,
    proxy: plan.Member,
    layout: Layout,
    fleet: config.Fleet,
    cert: Path,
    progress: Callable[[str], None],
) -> None:
    """Check and start `proxy`'s rendered nginx, and record its URLs."""
    progress(f"lab: starting nginx for {proxy.name} on {proxy.address} (rendered from templates/)")
    plane = fleet.dataplane
    frontproxy.check_config(layout)
    nginx = frontproxy.start_nginx(layout, proxy.address, plane.https_port)
    _record(state, ProcessRecord.of("nginx", nginx, ["nginx", str(layout.nginx_conf)], proxy=proxy.name))
    state.proxies[proxy.name] = {
        "address": proxy.address,
        "redis": fleet.proxy(proxy.name).redis,
        "http": f"http://{proxy.address}:{plane.http_port}",
        "https": f"https://{proxy.address}:{plane.https_port}",
        "internal": f"http://{proxy.address}:{plane.internal_port}",
        "certificate": str(cert),
        "conf_dir": str(layout.conf_dir),
        "active_proxy_file": fleet.proxy(proxy.name).active_proxy_file,
    }


def _record(state: LabState, record: ProcessRecord) -> None:
    # Saved after every start, so `lab down` can clean up even after a crash half-way.
    state.processes.append(record)
    state.save()


def start_listener(
    state: LabState, directory: Path, proxy: plan.Member, fleet: config.Fleet, progress: Callable[[str], None]
) -> None:
    """`proxy`'s proxylistener, configured from the lab's fleet.yaml, on its address and Redis."""
    listener = fleet.proxylistener
    progress(f"lab: starting proxylistener of {proxy.name} on {proxy.address}:{listener.port}")
    argv = [
        sys.executable, "-m", "toolforgectl.daemons.proxylistener.main",
        "--config", str(directory / "fleet.yaml"), "--proxy", proxy.name,
        "--listen", proxy.address, "--metrics-address", proxy.address,
        "--redis", fleet.proxy(proxy.name).redis,
    ]  # fmt: skip
    log = directory / proxy.name / "logs" / "proxylistener.log"
    process = spawn("proxylistener", argv, log, proxy.address, listener.port)
    marks = [
        "toolforgectl.daemons.proxylistener.main",
        str(directory / "fleet.yaml"),
        f"--proxy {proxy.name}",
    ]
    _record(state, ProcessRecord.of("proxylistener", process, marks, proxy=proxy.name))
    state.proxies[proxy.name]["proxylistener"] = f"{proxy.address}:{listener.port}"


def _start_kube(
    state: LabState,
    directory: Path,
    proxies: list[plan.Member],
    found: plan.Ports,
    progress: Callable[[str], None],
) -> None:
    """The lab's Kubernetes API (one, as a cluster is), then a kube2proxy on every proxy: only the
    active one's writes (each reads its own active-proxy file)."""
    progress(f"lab: starting the lab's Kubernetes API on {LAB_HOST}:{found.kube_api}")
    kubeconfig = plan.kubeconfig(directory)
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "toolforgectl.lab.kubeapi",
        "--host", LAB_HOST, "--port", str(found.kube_api), "--kubeconfig", str(kubeconfig),
    ]  # fmt: skip
    api = spawn("kubeapi", argv, kubeconfig.parent / "kubeapi.log", LAB_HOST, found.kube_api)
    _record(state, ProcessRecord.of("kubeapi", api, ["toolforgectl.lab.kubeapi", f"--port {found.kube_api}"]))
    state.kube_api = f"http://{LAB_HOST}:{found.kube_api}"
    for proxy in proxies:
        start_kube2proxy(state, directory, proxy, found.kube2proxy_metrics, progress)


def start_kube2proxy(
    state: LabState, directory: Path, proxy: plan.Member, metrics_port: int, progress: Callable[[str], None]
) -> None:
    """`proxy`'s kube2proxy against the lab's Kubernetes API (it writes only while `proxy` is active)."""
    progress(f"lab: starting kube2proxy of {proxy.name}")
    argv = [
        sys.executable, "-m", "toolforgectl.daemons.kube2proxy",
        "--config", str(directory / "fleet.yaml"), "--proxy", proxy.name,
        "--metrics-address", proxy.address,
    ]  # fmt: skip
    log = directory / proxy.name / "logs" / "kube2proxy.log"
    process = spawn("kube2proxy", argv, log, proxy.address, metrics_port)
    marks = ["toolforgectl.daemons.kube2proxy", f"--proxy {proxy.name}"]
    _record(state, ProcessRecord.of("kube2proxy", process, marks, proxy=proxy.name))
