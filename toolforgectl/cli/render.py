"""`toolforgectl render`: the nginx config and urlproxy settings of one proxy, as files or on stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from toolforgectl.cli.context import settings
from toolforgectl.core import output


def render(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the files under this directory (conf/, logs/, run/); default: stdout."
        ),
    ] = None,
    templates: Annotated[
        Path | None, typer.Option("--templates", help="Template directory (default: templates/).")
    ] = None,
) -> None:
    """Render the data plane config of --proxy (default: the active proxy) from the fleet config."""
    from toolforgectl.adapters.render import Layout, render_proxy, write_files  # jinja2: when it runs

    opts = settings(ctx)
    layout = Layout.under(out) if out else Layout.system()
    files = render_proxy(opts.fleet, opts.proxy_name, layout, templates)
    if out is None:
        for name, text in files.items():
            sys.stdout.write(f"# ===== {name} =====\n{text}")
        return
    write_files(files, layout, opts.fleet.dataplane.user)
    output.progress(
        f"rendered {len(files)} files into {layout.conf_dir}; check with: nginx -t -c {layout.nginx_conf}"
    )
