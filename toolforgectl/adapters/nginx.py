"""Running one front proxy's nginx from rendered files: a self-signed TLS pair, `nginx -t`, start, stop."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from toolforgectl.adapters.processes import Process, binary, spawn
from toolforgectl.adapters.render import Layout, render_proxy, write_files
from toolforgectl.core.config.fleet import Fleet
from toolforgectl.core.errors import LabError, NginxError

# `nginx: [emerg] unknown directive "x" in /path/urlproxy.conf:12`, and a Lua error at start:
# `nginx: [error] init_by_lua_file error: /path/lua/x.lua:12: module 'y' not found:`
_NGINX_PROBLEMS = (
    re.compile(r"_by_lua\w* error: (?P<file>[^:\s]+):(?P<line>\d+): (?P<message>.*)"),
    re.compile(r"\[(?:emerg|alert|crit|error)\] (?P<message>.*?) in (?P<file>\S+):(?P<line>\d+)"),
)


_REUSE_SECONDS = 7 * 86400  # well inside the 30 days the pair is valid


def self_signed(
    directory: Path, name: str = "proxy", addresses: tuple[str, ...] = ("127.0.0.1",)
) -> tuple[Path, Path]:
    """A throwaway certificate and key for `addresses` and localhost (lab and lint only); a pair
    already in `directory` under `name` is reused while young, so each `name` must keep its addresses."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    if cert.exists() and key.exists() and time.time() - cert.stat().st_mtime < _REUSE_SECONDS:
        return cert, key
    names = ",".join(f"IP:{address}" for address in addresses)
    argv = [
        binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        "-subj", "/CN=localhost", "-addext", f"subjectAltName={names},DNS:localhost",
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(f"openssl could not make a self-signed pair: {done.stderr.strip()[-300:]}")
    key.chmod(0o600)
    return cert, key


def with_tls(fleet: Fleet, cert: Path, key: Path) -> Fleet:
    """`fleet` with its data plane pointed at `cert` and `key`."""
    plane = replace(fleet.dataplane, tls_certificate=str(cert), tls_key=str(key))
    return replace(fleet, dataplane=plane)


def render_into(
    fleet: Fleet, proxy: str | None, root: Path, templates: Path | None = None, lua: Path | None = None
) -> Layout:
    """Render `proxy`'s data plane into `root` (conf/, logs/, run/) and return its layout."""
    layout = Layout.under(root, lua)
    write_files(render_proxy(fleet, proxy, layout, templates), layout, fleet.dataplane.user)
    return layout


def check_config(layout: Layout) -> None:
    """`nginx -t` on the rendered config; NginxError names the file and line of the first problem."""
    done = subprocess.run(
        [*_nginx(layout), "-t", "-q"], check=False, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise NginxError(_first_problem(done.stderr, layout.nginx_conf))


def start_nginx(layout: Layout, host: str, port: int) -> Process:
    """Start nginx in the foreground of its own session and wait until `host:port` answers."""
    log = layout.log_dir / "nginx.out"
    try:
        return spawn("nginx", [*_nginx(layout), "-g", "daemon off;"], log, host, port)
    except LabError:
        problems = _read(layout.log_dir / "error.log") + _read(log)
        raise NginxError(_first_problem(problems, layout.nginx_conf)) from None


def _nginx(layout: Layout) -> list[str]:
    return [binary("nginx"), "-p", str(layout.run_dir), "-e", "stderr", "-c", str(layout.nginx_conf)]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _first_problem(output: str, conf: Path) -> str:
    """`file:line: message` for the first problem nginx reported (else its last line)."""
    for pattern in _NGINX_PROBLEMS:
        found = pattern.search(output)
        if found:
            return f"{found['file']}:{found['line']}: {found['message'].rstrip(':')}"
    lines = [line for line in output.splitlines() if "[emerg]" in line or "[error]" in line]
    last = (lines or output.strip().splitlines() or ["nginx failed without a message"])[-1]
    return f"{conf}:0: {last.strip()}"
