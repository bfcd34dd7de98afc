"""The `kube2proxy` entry point: settings, the active-proxy gate, a clean stop on SIGTERM, the outer loop."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from toolforgectl.adapters.kube import ServiceApi
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import activeproxy, config, logs, output
from toolforgectl.core.config import Kube2proxy
from toolforgectl.core.config.fleet import Fleet, Proxy
from toolforgectl.core.destinations import Destinations
from toolforgectl.core.errors import ConfigError, ToolforgectlError
from toolforgectl.daemons.kube2proxy.metrics import Metrics
from toolforgectl.daemons.kube2proxy.reflector import Reflector

log = logging.getLogger("kube2proxy")


# Not an error, so not in core/errors.py's tree: a stop request that must unwind through the
# kubernetes and redis clients, whose `except Exception` would swallow any Exception. Like SystemExit.
class Stopped(BaseException):
    """SIGTERM or SIGINT arrived: unwind and exit 0."""


class Stopper:
    """Turns SIGTERM/SIGINT into Stopped, but only while waiting, never in the middle of a write."""

    def __init__(self) -> None:
        self.requested = False
        self._waiting = 0

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on."""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self._waiting:
            raise Stopped

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A region (a blocking read, a sleep) that a stop request may cut short."""
        if self.requested:
            raise Stopped
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1

    def sleep(self, seconds: float) -> None:
        """Sleep, unless asked to stop."""
        with self.interruptible():
            time.sleep(seconds)


class ActiveGate:
    """Whether this host is the active proxy, by the one policy of core/activeproxy.py: the file
    names it (or, when there is no file, the fleet config does). An empty file (the kill switch) or
    one that cannot be read means standby: writing nothing is safe, two writers are not.

    Re-read at most every `active_check_interval` seconds, so a failover needs no restart.
    """

    def __init__(self, proxy: Proxy, config_file: Path, fleet: Fleet, metrics: Metrics) -> None:
        self.proxy, self.config_file, self.metrics = proxy, config_file, metrics
        self.settings = fleet.kube2proxy
        self.file = config.active_proxy_file(self.settings.active_proxy_file, proxy)
        self._active: bool | None = None
        self._next_check = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if self._active is not None and now < self._next_check:
            return self._active
        self._next_check = now + self.settings.active_check_interval
        active, holder = self._check()
        self.metrics.active_checks.inc()
        if active != self._active:
            state = "active: syncing routes" if active else f"standby ({holder}): writing nothing"
            log.info("this proxy (%s) is %s", self.proxy.name, state)
        self._active = active
        self.metrics.active.set(int(active))
        return active

    def _check(self) -> tuple[bool, str]:
        """Whether this proxy is active, and who is, in words for the log."""
        try:
            active = activeproxy.read(self.file, lambda: config.load(self.config_file).active_proxy)
        except ToolforgectlError as exc:  # the file is broken, or it is missing and so is the config
            log.error("cannot tell which proxy is active, so acting as standby: %s", exc)
            return False, "the active proxy is unknown"
        if active.host is None:
            return False, f"no proxy is active: {active.source} is empty"
        mine = activeproxy.names_proxy(active.host, self.proxy.name, self.proxy.address)
        return mine, f"{active.host} is active"


def serve(reflector: Reflector, gate: ActiveGate, stopper: Stopper) -> None:
    """Forever: reflect while active, idle while standby."""
    while True:
        if gate():
            reflector.run_while_active()
        else:
            stopper.sleep(gate.settings.active_check_interval)


def build(args: argparse.Namespace, stopper: Stopper) -> tuple[Reflector, ActiveGate]:
    """Wire the config, the route store, the API client, the gate and the metrics together."""
    config_file = config.config_path(args.config)
    fleet = config.load(config_file)
    proxy = fleet.proxy(args.proxy)
    fleet = dataclasses.replace(fleet, kube2proxy=_settings(args, fleet))
    settings = fleet.kube2proxy
    metrics = Metrics()
    store = RouteStore.from_url(
        args.redis or proxy.redis,
        destinations=Destinations.of_fleet(fleet),
        max_routes=fleet.dataplane.max_routes_per_tool,
    )
    api = ServiceApi.connect(settings.kubeconfig, settings.context)
    gate = ActiveGate(proxy, config_file, fleet, metrics)
    reflector = Reflector(
        api,
        store,
        settings,
        metrics,
        is_active=gate,
        interruptible=stopper.interruptible,
        sleep=stopper.sleep,
    )
    try:
        metrics.serve(settings.metrics_address, settings.metrics_port)
    except OSError as exc:
        where = f"{settings.metrics_address}:{settings.metrics_port}"
        raise ConfigError(f"cannot serve metrics on {where}: {exc.strerror}") from None
    return reflector, gate


def _settings(args: argparse.Namespace, fleet: Fleet) -> Kube2proxy:
    """The `kube2proxy:` section with the command line's metrics address and port over it (the lab
    runs one kube2proxy per proxy address from one config)."""
    given = (("metrics_address", args.metrics_address), ("metrics_port", args.metrics_port))
    return config.overridden(fleet.kube2proxy, "command line", **{k: v for k, v in given if v is not None})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: where the config is and which proxy this host is."""
    parser = argparse.ArgumentParser(
        prog="kube2proxy", description="Keep the routes of Kubernetes Services in the proxy's route store."
    )
    parser.add_argument("--config", help="fleet config (default: $TOOLFORGECTL_CONFIG or ~/.config/...)")
    hostname = socket.gethostname().split(".")[0]
    parser.add_argument("--proxy", default=hostname, help="this host's proxy name (default: its hostname)")
    parser.add_argument("--redis", help="write to this Redis instead of this proxy's")
    parser.add_argument("--metrics-address", help="address of the Prometheus endpoint (default 127.0.0.1)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port, 0 = off (default 9617)")
    logs.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run until SIGTERM (exit 0) or a fatal configuration error."""
    args = parse_args(argv)
    logs.setup(args.log_format, args.log_level)
    stopper = Stopper()
    stopper.install()
    try:
        serve(*build(args, stopper), stopper)
    except Stopped:
        log.info("stopped")
    except ToolforgectlError as exc:
        output.fail("kube2proxy", exc)
