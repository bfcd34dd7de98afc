"""`toolforgectl tools`: provision what a tool needs to register with proxylistener (its token)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolforgectl.cli.context import DryRunOpt, JsonOpt, ReasonOpt, TaskIdOpt, settings
from toolforgectl.core import output, tokens
from toolforgectl.core.errors import UsageError
from toolforgectl.workflows import attribution
from toolforgectl.workflows import tokens as token_workflow

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    help="Mint and rotate tools' proxylistener tokens, and the server key.", no_args_is_help=True
)

KeyOpt = Annotated[
    Path | None,
    typer.Option("--key-file", help="Server key (default: proxylistener.token_key_file of the config)."),
]


@app.command("token")
def token(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="The tool whose token to mint.")],
    rotate: Annotated[bool, typer.Option("--rotate", help="Invalidate the current token first.")] = False,
    write: Annotated[
        Path | None, typer.Option("--write", help="Write the token to this file (mode 0600), not stdout.")
    ] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Give the written file to this user.")] = None,
    key_file: KeyOpt = None,
    reason: ReasonOpt = None,
    task_id: TaskIdOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Print (or write) TOOL's registration token; with --rotate, make a new one.

    The token is an HMAC of the tool name and a per-tool generation under the server key;
    rotating bumps the generation in the route store (audited, with --reason and --task-id),
    so the old token stops working at once.
    """
    if not rotate and (reason is not None or task_id is not None):
        raise UsageError("--reason and --task-id go with --rotate: nothing else is written to the store")
    key = tokens.load_key(key_file or Path(settings(ctx).fleet.proxylistener.token_key_file))
    minted = token_workflow.token(
        settings(ctx).store(),
        key,
        tool,
        rotate_by=attribution.operator(reason, task_id) if rotate else None,
        write=write,
        owner=owner,
        dry_run=dry_run,
    )
    data: dict[str, Any] = {
        "tool": tool,
        "generation": minted.generation,
        "rotated": minted.rotated,
        "dry_run": minted.dry_run,
    }
    if write is not None:
        data["path"] = str(write)
    elif not dry_run:
        data["token"] = minted.value

    def human(console: Console) -> None:
        verb = "would write" if dry_run else "wrote"
        if write is not None:
            console.print(f"{verb} {tool}'s token (generation {minted.generation}) to {write}", markup=False)
        elif dry_run:
            console.print(f"would print {tool}'s token (generation {minted.generation})", markup=False)
        else:
            console.print(minted.value, markup=False, highlight=False)

    output.emit("tools token", data, as_json=as_json, human=human)


@app.command("keygen")
def keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the new server key (mode 0600).")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing key (invalidates every token).")
    ] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Create the proxylistener's server key: 32 random bytes that every token is derived from."""
    token_workflow.keygen(path, force=force, dry_run=dry_run)
    if dry_run:
        output.progress(f"would write a new {tokens.KEY_MIN_BYTES}-byte key to {path}")
    else:
        output.progress(f"wrote a new server key to {path}")
