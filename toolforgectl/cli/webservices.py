"""`toolforgectl webservices status`: per tool, manifest vs job vs route, and what the monitor would do."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from toolforgectl.cli.context import JsonOpt, settings
from toolforgectl.core import output

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="See every tool's webservice as webservicemonitor sees it.", no_args_is_help=True)


@app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Each tool with a service.manifest: its type and backend, its job's state, whether the
    proxy's /list has it, and what webservicemonitor would do (restart, throttled, skip, ...).

    Reads the monitor's restart history (webservice.state_file) but changes nothing.
    """
    from toolforgectl.workflows import webservices  # the backends: loaded when the command runs
    from toolforgectl.workflows.restarthistory import RestartHistory

    fleet = settings(ctx).fleet
    conf = fleet.webservice
    seen = webservices.survey(fleet)
    history = RestartHistory(Path(conf.state_file), conf.max_restarts, conf.restart_window)
    verdicts = [v.as_dict() for v in webservices.decide(seen, history, time.time())]
    data: dict[str, Any] = {"list_error": seen.list_error or None, "tools": verdicts}

    def human(console: Console) -> None:
        rows = [
            (
                v["tool"],
                v["type"] or "-",
                v["backend"] or "-",
                v["job"]["state"] if v["job"] else "-",
                {True: "yes", False: "no", None: "?"}[v["routed"]],
                v["action"],
                v["reason"],
            )
            for v in verdicts
        ]
        output.table(console, ("tool", "type", "backend", "job", "routed", "monitor", "why"), rows)
        if seen.list_error:
            output.progress(f"warning: {seen.list_error}")

    output.emit("webservices status", data, as_json=as_json, human=human)
