"""The root `toolforgectl` command: global options, sub-apps, and the one place errors end.

Start-up matters (every TAB completion runs this): the sub-app modules import only typer and
core at module level, and each command imports the adapters it needs (redis, jinja2, the lab)
when it runs. tests/cli/test_startup.py pins that; bench/cli.py measures it.
"""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer

# typer vendors click and exports only BadParameter of its exceptions; embedding the app with
# standalone_mode=False (to end every error through output.fail) needs these. typer is pinned
# to one minor version in pyproject.toml; tests/cli/test_usage_errors.py breaks if they move.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, NoSuchOption
from typer.main import get_command

from toolforgectl import __version__
from toolforgectl.cli import (
    active_proxy,
    block,
    converge,
    debug,
    deploy,
    failover,
    hiera,
    lab,
    lint,
    playbooks,
    proxy,
    render,
    routes,
    tools,
    webservices,
)
from toolforgectl.cli.context import GLOBAL_OPTIONS, Settings, command_name
from toolforgectl.core import output
from toolforgectl.core.errors import EXIT_USAGE, ToolforgectlError

PROG = "toolforgectl"
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name=PROG,
    help="Operate a Toolforge-style dynamic proxy: routes, tool tokens, the data plane config, failover"
    " between proxies, webservices and the local lab.\n\n"
    "Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 a service (Redis, an API) is unavailable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(routes.app, name="routes")
app.add_typer(block.app, name="block")
app.add_typer(debug.app, name="debug")
app.add_typer(tools.app, name="tools")
app.add_typer(lab.app, name="lab")
app.add_typer(playbooks.app, name="playbooks")
app.add_typer(hiera.app, name="hiera")
app.add_typer(proxy.app, name="proxy")
app.add_typer(deploy.app, name="deploy")
app.add_typer(active_proxy.app, name="active-proxy")
app.add_typer(webservices.app, name="webservices")
app.add_typer(render.app, name="render")
app.command("lint")(lint.lint)
app.command("failover")(failover.failover)
app.command("converge")(converge.converge)


def _version(value: bool) -> None:
    if value:
        print(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config_file: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Fleet config file (default: $TOOLFORGECTL_CONFIG, else ~/.config/toolforgectl/config.yaml, else /etc/toolforgectl/config.yaml).",  # noqa: E501
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option("--redis", help="Use this Redis (redis://HOST:PORT/DB) instead of the config's."),
    ] = None,
    proxy: Annotated[
        str | None,
        typer.Option("--proxy", help="Act on this proxy's Redis instead of the active proxy's."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Operate a Toolforge-style dynamic proxy."""
    found = ctx.ensure_object(Settings)
    found.config_option, found.redis_url, found.proxy_name = config_file, redis_url, proxy


def main(args: list[str] | None = None) -> NoReturn:
    """Console-script entry: run the app; every error ends in output.fail (one line, exit code)."""
    args = sys.argv[1:] if args is None else args
    current = Settings()
    try:
        code = get_command(app).main(args, prog_name=PROG, standalone_mode=False, obj=current)
    except ToolforgectlError as exc:
        output.fail(PROG, exc, json_command=current.command if current.as_json else None)
    except NoArgsIsHelpError as exc:
        sys.exit(exc.exit_code)  # typer has printed the help already
    except ClickException as exc:
        _usage_error(exc, args)
    except KeyboardInterrupt:  # before typer runs (it turns Ctrl-C in a command into exit 130)
        code = EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:
        json_command = current.command if current.as_json else None
        output.fail(PROG, "interrupted", EXIT_INTERRUPTED, kind="interrupted", json_command=json_command)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error(exc: ClickException, args: list[str]) -> NoReturn:
    """A command line typer could not parse: one line naming the fix, exit 2."""
    ctx = getattr(exc, "ctx", None)
    message = exc.format_message()
    if isinstance(exc, NoSuchOption) and exc.option_name in GLOBAL_OPTIONS and ctx is not None:
        where = command_name(ctx)
        message = (
            f"{exc.option_name} is a global option: put it before the command,"
            f" as in `{PROG} {exc.option_name} VALUE {where}`"
        )
    elif ctx is not None:
        message = f"{message.rstrip('.')} (see `{ctx.command_path} --help`)"
    command = command_name(ctx) if ctx is not None else ""
    as_json = "--json" in (args[: args.index("--")] if "--" in args else args)
    output.fail(
        PROG, message, exc.exit_code or EXIT_USAGE, kind="usage", json_command=command if as_json else None
    )
