"""webservice: start, stop, restart, show and read the logs of the calling tool's web server.

    webservice [--backend local|gridengine|kubernetes] [--replicas N] [--cpu CPU] [--mem MEM]
               [TYPE] start|stop|restart|status|logs [-- EXTRA...]

The tool is the caller's (Unix user `<project>.<tool>`), or `--tool NAME` for an admin, who can
act only where the file system lets them write the tool's service.manifest. TYPE and the extra
arguments (the command, for type `generic`) default to the manifest's on restart, as do, on
Kubernetes, the replicas and each one's cpu and memory limit (`--cpu 500m --mem 1Gi`). Settings
come from the fleet config's `webservice:` section (defaults when there is no config file).
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from toolforgectl.core import output
from toolforgectl.core.config import Webservice, find, load
from toolforgectl.core.config.webservice import BACKENDS
from toolforgectl.core.errors import ToolforgectlError, UsageError
from toolforgectl.workflows import webservice as workflow
from toolforgectl.workflows.kubewebservice import SIZE_KEYS
from toolforgectl.workflows.webservice import ACTIONS, Request

if TYPE_CHECKING:
    from rich.console import Console

PROG = "webservice"


def _count(text: str) -> int:
    """A positive number of lines; anything else is a usage error."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text!r}")
    return int(text)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="fleet config (default: the usual lookup; none: defaults)")
    parser.add_argument("--tool", help="act for this tool (admins); default: the calling tool")
    parser.add_argument("--backend", choices=BACKENDS, help="where to run (default: the manifest's)")
    kube = "kubernetes: %s (default: the manifest's, else the configured default)"
    parser.add_argument("-r", "--replicas", type=int, help=kube % "how many pods")
    parser.add_argument("-c", "--cpu", help=kube % "each pod's cpu limit, such as 500m or 1")
    parser.add_argument(
        "-m", "--mem", dest="memory", metavar="MEM", help=kube % "each pod's memory limit, such as 1Gi"
    )
    parser.add_argument("--lines", type=_count, default=50, help="logs: how many lines (default 50)")
    parser.add_argument("--json", action="store_true", help="print the JSON envelope")
    parser.add_argument("words", nargs=argparse.REMAINDER, help="[TYPE] ACTION [-- EXTRA ARGS]")
    args = parser.parse_args(argv)
    words = list(args.words)
    actions = [index for index, word in enumerate(words[:2]) if word in ACTIONS]
    if not actions:
        parser.error(f"give an action: {', '.join(ACTIONS)}")
    at = actions[0]
    args.type = words[0] if at == 1 else None
    extra = words[at + 1 :]
    args.extra = tuple(extra[1:] if extra[:1] == ["--"] else extra)
    args.action = words[at]
    if args.action not in ("start", "restart") and args.extra:
        # Only start and restart take extra arguments; for the others, options may follow the
        # action (`webservice logs --lines 100`), as a person types them.
        late = parser.parse_args(list(args.extra))
        if late.words:
            parser.error(f"{args.action} takes no extra arguments: {' '.join(late.words)}")
        for name in ("config", "tool", "backend", "json", *SIZE_KEYS):
            setattr(args, name, getattr(late, name) or getattr(args, name))
        args.lines = late.lines if late.lines != parser.get_default("lines") else args.lines
        args.extra = ()
    return args


def _settings(option: str | None) -> Webservice:
    path = find(option)
    return load(path).webservice if path is not None else Webservice()


def _caller(settings: Webservice, asked: str | None) -> str:
    if asked:
        return asked
    user = pwd.getpwuid(os.getuid()).pw_name
    prefix = f"{settings.project}."
    if not user.startswith(prefix):
        raise UsageError(f"run this as a tool account ({prefix}TOOL), or name the tool with --tool")
    return user[len(prefix) :]


def run(args: argparse.Namespace) -> tuple[Any, str]:
    """Do what `args` ask; the JSON data and the line a person reads."""
    settings = _settings(args.config)
    found = workflow.tool(settings, _caller(settings, args.tool))
    given = {key: getattr(args, key) for key in SIZE_KEYS if getattr(args, key) is not None}
    if given and args.action not in ("start", "restart"):
        raise UsageError(f"--replicas, --cpu and --mem go with start or restart, not {args.action}")
    asked = Request(args.type, args.backend, args.extra, **given)
    if args.action in ("start", "restart"):
        job = (workflow.start if args.action == "start" else workflow.restart)(settings, found, asked)
        verb = "started" if args.action == "start" else "restarted"
        return job.as_dict(), f"{verb} {found.name}'s webservice (job {job.name} {job.number})".rstrip()
    if args.action == "stop":
        stopped = workflow.stop(settings, found)
        return {
            "stopped": stopped
        }, f"stopped {found.name}'s webservice" if stopped else "no webservice was running"
    if args.action == "logs":
        lines = workflow.logs(settings, found, args.lines)
        return lines, "\n".join(lines)
    data = workflow.status(settings, found)
    if not data["wanted"]:
        return data, f"{found.name} has no webservice"
    state = "running" if data["running"] else "NOT running"
    return data, f"{found.name}'s webservice of type {data['type']} on {data['backend']} is {state}"


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry."""
    args = _arguments(argv)
    command = f"{PROG} {args.action}"
    try:
        data, line = run(args)
    except ToolforgectlError as exc:
        output.fail(PROG, exc, json_command=command if args.json else None)

    def human(console: Console) -> None:
        if line:
            console.print(line, markup=False, highlight=False)

    output.emit(command, data, as_json=args.json, human=human)
    sys.exit(0)


if __name__ == "__main__":
    main()
