"""The root `toolforgectl` command: global options, sub-apps, and the one place errors end."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from toolforgectl import __version__
from toolforgectl.cli import debug, lab, lint, render, routes, tools
from toolforgectl.cli.context import Settings
from toolforgectl.core import output
from toolforgectl.core.errors import ToolforgectlError

app = typer.Typer(
    name="toolforgectl",
    help="Operate a Toolforge-style dynamic proxy: routes, proxies, failover and the local lab.\n\n"
    "Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 a service (Redis, an API) is unavailable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(routes.app, name="routes")
app.add_typer(debug.app, name="debug")
app.add_typer(tools.app, name="tools")
app.add_typer(lab.app, name="lab")
app.command("render")(render.render)
app.command("lint")(lint.lint)


def _version(value: bool) -> None:
    if value:
        print(f"toolforgectl {__version__}")
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
    ctx.obj = Settings(config_option=config_file, redis_url=redis_url, proxy_name=proxy)


def main() -> None:
    """Console-script entry: run the app, turning our errors into one line and an exit code."""
    try:
        app()
    except ToolforgectlError as exc:
        output.error_line(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        output.error_line("interrupted")
        sys.exit(130)
