"""webservicemonitor: every interval, restart each tool whose wanted webservice is down or unrouted.

    webservicemonitor [--config PATH] [--once] [--dry-run] [--interval S]

One pass (workflows/webservices.py decides): every manifest, each backend's jobs, the active
proxy's /list; then for each `restart` verdict, record the attempt in the persisted history and
run `webservice restart` as the tool (`webservice.restart_command`, with a timeout), appending
what it did to the tool's `service.log`. A tool restarted `max_restarts` times within
`restart_window` is throttled. `--dry-run` only logs what it would restart; `--once` does one
pass and exits (1 if anything failed). SIGTERM ends it between passes, or after the current restart.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from toolforgectl.core import config, logs, output
from toolforgectl.core.config import Fleet, Proxy
from toolforgectl.core.config.webservice import Webservice
from toolforgectl.core.errors import ToolforgectlError
from toolforgectl.daemons.webservicemonitor.metrics import Metrics
from toolforgectl.workflows import webservices
from toolforgectl.workflows.restarthistory import RestartHistory
from toolforgectl.workflows.webservices import Verdict

PROG = "webservicemonitor"
SERVICE_LOG = "service.log"

log = logging.getLogger(PROG)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="fleet config (default: the usual lookup)")
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--dry-run", action="store_true", help="log what would be restarted; restart nothing")
    parser.add_argument(
        "--interval", type=float, help="seconds between passes (default: webservice.interval)"
    )
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (default: webservice.metrics_port)")
    logs.add_arguments(parser)
    return parser.parse_args(argv)


def _fleet(option: str | None) -> Fleet:
    path = config.find(option)
    if path is None:  # no config: defaults, and /list on this host
        return Fleet(proxies=(Proxy(name="localhost"),))
    return config.load(path)


class Monitor:
    """One pass at a time; the restart history lives in `webservice.state_file`."""

    def __init__(self, fleet: Fleet, metrics: Metrics, dry_run: bool) -> None:
        self.fleet, self.settings, self.metrics, self.dry_run = fleet, fleet.webservice, metrics, dry_run
        self.history = RestartHistory(
            Path(self.settings.state_file), self.settings.max_restarts, self.settings.restart_window
        )
        self.stopping = threading.Event()

    def run_pass(self) -> bool:
        """One reconciliation pass; whether it went without an error."""
        started, now = time.monotonic(), time.time()
        seen = webservices.survey(self.fleet)
        healthy = True
        if seen.list_error:
            healthy = False
            self.metrics.errors.labels(kind="list").inc()
            logs.event(
                log,
                "proxy /list unavailable; restarting only tools whose job is down",
                logging.ERROR,
                error=seen.list_error,
            )
        for backend, jobs in seen.jobs.items():
            if isinstance(jobs, str):
                healthy = False
                self.metrics.errors.labels(kind="jobs").inc()
                logs.event(log, "cannot list jobs", logging.ERROR, backend=backend, error=jobs)
        restarted = 0
        for verdict in webservices.decide(seen, self.history, now):
            self.metrics.checked.inc()
            if self.stopping.is_set():
                break
            healthy &= self._act(verdict, now)
            restarted += verdict.action == "restart"
        if not self.dry_run:
            self.history.save(now)
        self.metrics.last_pass.set(time.time())
        self.metrics.pass_seconds.set(time.monotonic() - started)
        verb = "would restart" if self.dry_run else "restarted"
        logs.event(
            log, f"pass completed, {restarted} webservices {verb}", tools=len(seen.found), restarts=restarted
        )
        return healthy

    def _act(self, verdict: Verdict, now: float) -> bool:
        if verdict.action == "skip" and verdict.backend is None:
            self.metrics.errors.labels(kind="manifest").inc()
            logs.event(log, "manifest skipped", logging.WARNING, tool=verdict.tool, reason=verdict.reason)
            return True  # one tool's bad manifest is that tool's problem, not the monitor's
        if verdict.action == "throttled":
            self.metrics.throttled.inc()
            window = f"{self.settings.restart_window:g}"
            message = f"Throttled for {self.settings.max_restarts} restarts in last {window} seconds"
            logs.event(log, message, logging.WARNING, tool=verdict.tool, reason=verdict.reason)
            if not self.dry_run:
                self._service_log(verdict.tool, message)
            return True
        if verdict.action != "restart":
            return True
        if self.dry_run:
            logs.event(log, "would restart", tool=verdict.tool, reason=verdict.reason)
            return True
        self.history.record(verdict.tool, now)  # before it runs: a failed attempt counts too
        self._service_log(verdict.tool, f"{verdict.reason}; restarting the webservice")
        ok = self._restart(verdict)
        self.metrics.restarted.labels(outcome="ok" if ok else "failed").inc()
        return ok

    def _restart(self, verdict: Verdict) -> bool:
        user = f"{self.settings.project}.{verdict.tool}"
        argv = [
            part.replace("{tool}", verdict.tool)
            .replace("{user}", user)
            .replace("{backend}", verdict.backend or "")
            for part in self.settings.restart_command
        ]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.settings.restart_timeout, check=False
            )
        except subprocess.TimeoutExpired:
            outcome, detail = False, f"did not finish within {self.settings.restart_timeout:g}s"
        except OSError as exc:
            outcome, detail = False, f"cannot run {argv[0]}: {exc.strerror or exc}"
        else:
            outcome = done.returncode == 0
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
            detail = "ok" if outcome else f"exit {done.returncode}: {said[0]}"
        level = logging.INFO if outcome else logging.ERROR
        logs.event(
            log,
            "restarted" if outcome else "restart failed",
            level,
            tool=verdict.tool,
            reason=verdict.reason,
            outcome=detail,
        )
        self._service_log(verdict.tool, f"restart {'done' if outcome else 'failed: ' + detail}")
        return outcome

    def _service_log(self, tool: str, message: str) -> None:
        """Append `message` to the tool's service.log, never through a symlink, as the tool's file."""
        home = Path(self.settings.home.replace("{tool}", tool))
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}\n"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            info = os.lstat(home)
            fd = os.open(home / SERVICE_LOG, flags, 0o644)
            try:
                if os.fstat(fd).st_uid != info.st_uid and os.geteuid() == 0:
                    os.fchown(fd, info.st_uid, info.st_gid)
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            self.metrics.errors.labels(kind="service_log").inc()
            logs.event(log, "cannot append to service.log", logging.WARNING, tool=tool, error=str(exc))


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry."""
    args = _arguments(argv)
    logs.setup(args.log_format, args.log_level)
    try:
        fleet = _fleet(args.config)
        settings: Webservice = fleet.webservice
        metrics = Metrics()
        monitor = Monitor(fleet, metrics, args.dry_run)
        port = settings.metrics_port if args.metrics_port is None else args.metrics_port
        metrics.serve(settings.metrics_address, port)
    except ToolforgectlError as exc:
        output.fail(PROG, exc)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        monitor.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    interval = args.interval or settings.interval
    logs.event(log, "started", dry_run=args.dry_run, interval=interval, once=args.once)
    while True:
        try:
            healthy = monitor.run_pass()
        except ToolforgectlError as exc:  # e.g. the homes cannot be listed: try again next time
            healthy = False
            metrics.errors.labels(kind="pass").inc()
            logs.event(log, "pass failed", logging.ERROR, error=str(exc))
        if args.once:
            sys.exit(0 if healthy else 1)
        if monitor.stopping.wait(interval):
            logs.event(log, "stopped")
            sys.exit(0)


if __name__ == "__main__":
    main()
