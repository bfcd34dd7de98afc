"""`toolforgectl render`: the nginx config and urlproxy settings of one proxy, and (`render units`)
the systemd units of a proxy host, as files or on stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from toolforgectl.cli.context import settings
from toolforgectl.core import output

app = typer.Typer(
    help="Render the data plane config of --proxy (default: the active proxy) from the fleet config;"
    " `render units`: the daemons' systemd units.",
    invoke_without_command=True,
    no_args_is_help=False,
)

TemplatesOpt = Annotated[
    Path | None, typer.Option("--templates", help="Template directory (default: templates/).")
]
DAEMONS = ("proxylistener", "kube2proxy", "webservicemonitor")


@app.callback()
def render(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the files under this directory (conf/, logs/, run/); default: stdout."
        ),
    ] = None,
    templates: TemplatesOpt = None,
) -> None:
    """Render the data plane config of --proxy (default: the active proxy) from the fleet config."""
    if ctx.invoked_subcommand is not None:
        if out or templates:  # they would be silently dropped: the subcommand has its own
            raise typer.BadParameter(f"give --out and --templates after `{ctx.invoked_subcommand}`")
        return
    from toolforgectl.adapters.render import Layout, render_proxy, write_files  # jinja2: when it runs

    opts = settings(ctx)
    layout = Layout.under(out) if out else Layout.system()
    files = render_proxy(opts.fleet, opts.proxy_name, layout, templates)
    if out is None:
        _print(files)
        return
    write_files(files, layout, opts.fleet.dataplane.user)
    output.progress(
        f"rendered {len(files)} files into {layout.conf_dir}; check with: nginx -t -c {layout.nginx_conf}"
    )


@app.command("units")
def units(
    ctx: typer.Context,
    prefix: Annotated[
        Path | None,
        typer.Option(
            "--prefix",
            help="Where the programs are installed, in PREFIX/bin: a virtualenv's root, or /usr for a"
            " package (default: the prefix of this toolforgectl's Python).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the files under this directory as under /etc (systemd/system/, sysusers.d/,"
            " tmpfiles.d/); default: stdout.",
        ),
    ] = None,
    templates: TemplatesOpt = None,
) -> None:
    """Render the daemons' systemd units, their users, the data plane's run directory and nginx's drop-in."""
    from toolforgectl.adapters.render import render_units, write_tree  # jinja2: when it runs

    bin_dir = (prefix or Path(sys.prefix)).absolute() / "bin"
    files = render_units(settings(ctx).fleet, bin_dir, templates)
    missing = [name for name in DAEMONS if not (bin_dir / name).exists()]
    if missing:
        output.progress(f"warning: {bin_dir} has no {', '.join(missing)} here: install them there first")
    if out is None:
        _print(files)
        return
    write_tree(files, out)
    output.progress(
        f"rendered {len(files)} files under {out}; then: systemd-sysusers, systemd-tmpfiles --create,"
        " systemctl daemon-reload (docs/install.md)"
    )


def _print(files: dict[str, str]) -> None:
    for name, text in files.items():
        sys.stdout.write(f"# ===== {name} =====\n{text}")
