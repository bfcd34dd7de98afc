"""`toolforgectl lint`: the CI gate for templates/, lua/, playbooks/ and fleet configs.

Stages, in order; the first failing stage stops the run with `file:line: message`:
  yaml      playbooks/*.yaml load as playbooks (every step registered, every option typed, ids
            unique, rollback or instructions where the point of no return asks); every sample
            fleet config passes config.parse
  render    every template renders for every proxy of every sample (StrictUndefined)
  nginx -t  each rendered config, with the real Lua module loaded
  start     nginx started once for real (nginx -t skips init_by_lua), then stopped
  redis     the rendered redis.conf started for real (on a free loopback port) and PINGed
  luacheck  lua/ with its .luacheckrc (std = "ngx_lua")
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from toolforgectl.adapters import nginx as frontproxy
from toolforgectl.adapters.processes import binary, free_port, start_redis_from
from toolforgectl.adapters.render import Layout
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import config
from toolforgectl.core.errors import (
    ConfigError,
    LabError,
    LintError,
    NginxError,
    PlaybookError,
    RouteStoreError,
)
from toolforgectl.core.resources import resource_dir
from toolforgectl.workflows.playbook import spec

_LUACHECK_LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):\d+: (?P<message>.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Sources:
    """What to lint: the trees of this installation unless another repo's CI points elsewhere."""

    templates: Path
    lua: Path
    playbooks: Path
    samples: tuple[Path, ...]

    @classmethod
    def default(cls) -> Sources:
        """This checkout's (or wheel's) templates/, lua/, playbooks/ and templates/samples/*.yaml."""
        templates = resource_dir("templates")
        return cls(templates, resource_dir("lua"), resource_dir("playbooks"), samples_in(templates))


def samples_in(templates: Path) -> tuple[Path, ...]:
    """The sample fleet configs kept beside the templates."""
    return tuple(sorted((templates / "samples").glob("*.yaml")))


def run(sources: Sources, progress: Callable[[str], None] = lambda _: None) -> list[str]:
    """Run every stage; returns the names of the stages passed, raises LintError on the first problem."""
    if not sources.samples:
        raise LintError(f"{sources.templates}/samples:0: no sample fleet configs (*.yaml) to render")
    passed = []
    with tempfile.TemporaryDirectory(prefix="toolforgectl-lint-") as work:
        fleets = _check_yaml(sources)
        passed.append("yaml")
        progress("lint: yaml ok")
        rendered = _render_all(fleets, sources, Path(work))
        passed.append("render")
        progress(f"lint: {len(rendered)} configs rendered")
        for layout, _fleet in rendered:
            _nginx_test(layout, sources.templates)
        passed.append("nginx -t")
        progress("lint: nginx -t ok")
        _start_once(*rendered[0])
        passed.append("start")
        progress("lint: nginx started and stopped")
        _start_redis_once(rendered[0][0], sources.templates, Path(work))
        passed.append("redis")
        progress("lint: redis-server started from redis.conf, answered PING, stopped")
    _luacheck(sources.lua)
    passed.append("luacheck")
    progress("lint: luacheck ok")
    return passed


def _check_yaml(sources: Sources) -> list[tuple[Path, config.Fleet]]:
    for path in spec.paths(sources.playbooks):
        try:
            spec.load(path)
        except PlaybookError as exc:
            raise LintError(str(exc)) from None
    fleets = []
    for path in sources.samples:
        try:
            fleets.append((path, config.load(path)))
        except ConfigError as exc:
            message = str(exc)
            if not re.match(r"^\S+:\d+:", message):  # config names the file but no line
                message = f"{path}:0: {message.removeprefix(f'{path}: ')}"
            raise LintError(message) from None
    return fleets


def _render_all(
    fleets: list[tuple[Path, config.Fleet]], sources: Sources, work: Path
) -> list[tuple[Layout, config.Fleet]]:
    cert, key = frontproxy.self_signed(work / "tls")
    rendered = []
    for path, sample in fleets:
        fleet = frontproxy.with_tls(_on_free_ports(sample), cert, key)
        for proxy in fleet.proxies:
            root = work / f"{path.stem}-{proxy.name}"
            layout = frontproxy.render_into(fleet, proxy.name, root, sources.templates, sources.lua)
            rendered.append((layout, fleet))
    return rendered


def _on_free_ports(fleet: config.Fleet) -> config.Fleet:
    """`fleet` listening on free loopback ports, so its config can really start here."""
    plane = replace(fleet.dataplane, http_port=free_port(), https_port=free_port(), internal_port=free_port())
    return replace(fleet, dataplane=plane)


def _nginx_test(layout: Layout, templates: Path) -> None:
    try:
        frontproxy.check_config(layout)
    except NginxError as exc:
        raise LintError(_in_template(str(exc), layout, templates)) from None


def _in_template(problem: str, layout: Layout, templates: Path) -> str:
    """Point a problem in a rendered file back at the template line that produced it, when one can tell."""
    found = re.match(r"^(?P<file>\S+):(?P<line>\d+): (?:\d+#\d+: )?(?P<message>.*)$", problem)
    if not found:
        return problem
    rendered = Path(found["file"])
    template = templates / "nginx" / f"{rendered.name}.j2"
    try:
        bad_line = rendered.read_text(encoding="utf-8").splitlines()[int(found["line"]) - 1].split()
        candidates = template.read_text(encoding="utf-8").splitlines()
    except (OSError, IndexError):
        return problem
    for number, text in enumerate(candidates, start=1):
        if bad_line and text.split()[:1] == bad_line[:1]:
            return f"{template}:{number}: {found['message']} (rendered: {rendered.name}:{found['line']})"
    return problem


def _start_once(layout: Layout, fleet: config.Fleet) -> None:
    address = fleet.proxies[0].address
    try:
        process = frontproxy.start_nginx(layout, address, fleet.dataplane.https_port)
    except NginxError as exc:
        raise LintError(_full_lua_path(str(exc), layout.lua_dir)) from None
    process.stop()


def _start_redis_once(layout: Layout, templates: Path, work: Path) -> None:
    """Start redis-server on the rendered redis.conf: it refuses a directive it does not know or a
    value it cannot take. Only where it listens and keeps data is overridden (loopback, temp dir)."""
    conf = layout.conf_dir / "redis.conf"
    data, log, port = work / "redis-lint", work / "redis-lint.log", free_port()
    data.mkdir()
    where = ("--bind", "127.0.0.1", "--port", str(port), "--dir", str(data))
    try:
        process = start_redis_from(conf, "127.0.0.1", port, log, *where)
    except LabError:
        raise LintError(_redis_problem(log.read_text(errors="replace"), conf, templates)) from None
    try:
        RouteStore.from_url(f"redis://127.0.0.1:{port}/0").ping()
    except RouteStoreError as exc:
        raise LintError(f"{conf}:0: redis-server started from it does not answer PING: {exc}") from None
    finally:
        process.stop()


def _redis_problem(output: str, conf: Path, templates: Path) -> str:
    """`template:line: message` for redis-server's "FATAL CONFIG FILE ERROR", else its last lines."""
    found = re.search(r"at line (?P<line>\d+)\n>>> '(?P<text>.*)'\n(?P<message>.*)", output)
    if not found:
        return f"{conf}:0: redis-server did not start: {output.strip()[-300:]}"
    directive = found["text"].split()[:1]
    template = templates / "redis" / "redis.conf.j2"
    for number, text in enumerate(template.read_text(encoding="utf-8").splitlines(), start=1):
        if directive and text.split()[:1] == directive:
            return f"{template}:{number}: {found['message']} (rendered: {conf.name}:{found['line']})"
    return f"{conf}:{found['line']}: {found['message']}"


def _full_lua_path(problem: str, lua: Path) -> str:
    """Lua shortens long chunk names to `...tail.lua`; put the whole path back."""
    if not problem.startswith("..."):
        return problem
    tail, _, rest = problem[3:].partition(":")
    matches = [path for path in lua.rglob("*.lua") if str(path).endswith(tail)]
    return f"{matches[0]}:{rest}" if len(matches) == 1 else problem


def _luacheck(lua: Path) -> None:
    argv = [
        binary("luacheck"),
        "--no-color",
        "--formatter",
        "plain",
        "--codes",
        "--config",
        str(lua / ".luacheckrc"),
        ".",
    ]
    done = subprocess.run(argv, cwd=lua, check=False, capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        return
    found = _LUACHECK_LINE.search(done.stdout)
    if found:
        raise LintError(f"{lua / found['file']}:{found['line']}: {found['message']}")
    raise LintError(f"{lua}:0: luacheck failed: {(done.stdout + done.stderr).strip()[-300:]}")
