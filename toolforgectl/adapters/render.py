"""Rendering a proxy's nginx, urlproxy and Redis config files, and the systemd units of its daemons,
from templates/ (the only jinja2 user)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import jinja2

from toolforgectl.core.config import DEFAULT_REDIS_PORT, SYSTEM_PATH, DataPlane, Fleet, Proxy
from toolforgectl.core.destinations import Destinations
from toolforgectl.core.errors import RenderError
from toolforgectl.core.resources import resource_dir

# Branded error pages: file name -> (title, message). nginx serves them for its own errors only;
# a tool's own 404 page passes through untouched.
ERROR_PAGES = {
    "400": ("Bad request", "The proxy could not understand this request."),
    "404": ("Not found", "There is nothing at this address."),
    "413": ("Request too large", "The request's body is larger than the proxy accepts."),
    "414": ("Address too long", "The address of this request is longer than the proxy accepts."),
    # nginx's 494 (a header line, often a cookie, too large), which clients get as a 400.
    "400-header": ("Request header too large", "A header of this request, often a cookie, is too large."),
    "429": ("Too many requests", "You sent too many requests in a short time. Please slow down."),
    "502": ("Tool unreachable", "The tool did not answer. It may be restarting; try again soon."),
    "503": ("Tool unavailable", "No web service answers for this tool right now."),
    "503-maintenance": ("Down for maintenance", "The proxy is in maintenance. Please come back soon."),
    "504": ("Tool timed out", "The tool took too long to answer. Try again later."),
    "500": ("Proxy error", "The proxy failed to handle this request. Please try again later."),
    # 403s of the block lists (lua/urlproxy/blocks.lua), one page per reason, as the original had.
    "403": ("Forbidden", "This request is not allowed."),
    "403-ip": ("Blocked", "Requests from your network are blocked because of abuse."),
    "403-user-agent": ("Blocked user agent", "Requests from this user agent are blocked because of abuse."),
    "403-referer": ("Blocked referer", "Requests coming from this referring site are blocked."),
    "403-no-user-agent": (
        "User agent required",
        "Requests must have a user agent. Please identify your client in the User-Agent header.",
    ),
    "508": ("Loop detected", "This request came back to the proxy through a tool's server and was stopped."),
}
# The hop marker urlproxy.conf sets on every request to a tool (value: the proxy's name); a request
# arriving with one of the fleet's names in it went round through a tool and gets the 508.
HOP_HEADER = "X-Toolforgectl-Hop"
UNIX_PATH_MAX = 107  # sun_path's 108 bytes, less the terminating NUL
TEMPLATES = ("nginx/nginx.conf.j2", "nginx/urlproxy.conf.j2", "nginx/errors/page.html.j2")
REDIS_TEMPLATE = "redis/redis.conf.j2"
USER_DATA_TEMPLATE = "cloud-init/proxy.yaml.j2"
# What a proxy VM installs (Debian): the data plane, Redis, and the Python of the daemons.
PROXY_PACKAGES = ("nginx-extras", "libnginx-mod-http-lua", "redis-server", "python3-venv")
# The `dataplane:` settings urlproxy.lua reads, passed under the same names; its DEFAULTS
# (lua/urlproxy/settings.lua) mirror their defaults, pinned by tests/fixtures/schema.json.
LUA_SETTINGS = (
    "routing",
    "default_backend",
    "maintenance",
    "redis_timeout_ms",
    "redis_keepalive_ms",
    "redis_pool_size",
    "redis_backoff_ms",
    "redis_backoff_max_ms",
    "watcher_ping_ms",
    "cache_ttl",
    "worker_cache_size",
    "peer_cache_size",
    "list_scan_count",
    "error_log_interval",
    "block_empty_user_agent",
    "metrics",
    "metrics_tools",
    "metrics_flush_ms",
    "max_routes_per_tool",
    "canonical_domain",
    "client_ip",
    "client_ip_forwarded_tools",
    "allow_loopback_backends",
    "resolver",
    "resolver_timeout_ms",
    "resolver_min_ttl",
    "resolver_max_ttl",
)


@dataclass(frozen=True)
class Layout:
    """Where the rendered files, the Lua code, logs and runtime files of one nginx live."""

    conf_dir: Path
    lua_dir: Path
    log_dir: Path
    run_dir: Path
    modules_dir: Path = Path("/usr/lib/nginx/modules")
    mime_types: Path = Path("/etc/nginx/mime.types")
    redis_dir: Path = Path("/var/lib/redis")  # the proxy's Redis: its AOF

    @classmethod
    def system(cls) -> Layout:
        """The layout on a proxy VM."""
        return cls(
            conf_dir=Path("/etc/nginx/toolforgectl"),
            lua_dir=Path("/usr/share/toolforgectl/lua"),
            log_dir=Path("/var/log/nginx"),
            run_dir=Path("/run/toolforgectl-nginx"),
        )

    @classmethod
    def under(cls, root: Path, lua_dir: Path | None = None) -> Layout:
        """A self-contained layout in `root` (the lab, lint, tests), using this checkout's lua/."""
        root = root.resolve()
        lua = (lua_dir or resource_dir("lua")).resolve()
        return cls(
            conf_dir=root / "conf",
            lua_dir=lua,
            log_dir=root / "logs",
            run_dir=root / "run",
            redis_dir=root / "redis",
        )

    @property
    def nginx_conf(self) -> Path:
        """The main config file to hand to `nginx -c`."""
        return self.conf_dir / "nginx.conf"

    @property
    def slow_socket(self) -> Path:
        """The unix socket of the slow path's server: reachable only by who can enter run_dir."""
        return self.run_dir / "slow.sock"


def render_proxy(
    fleet: Fleet, proxy_name: str | None, layout: Layout, templates: Path | None = None
) -> dict[str, str]:
    """Every file of `proxy_name`'s data plane (relative path -> text); the active proxy by default."""
    proxy = fleet.proxy(proxy_name)
    plane = fleet.dataplane
    env = _environment(templates or resource_dir("templates"))
    _check_socket_path(layout.slow_socket)
    context = {**_context(proxy, plane, layout), **_hop_marker(fleet)}
    settings = lua_settings(proxy, plane, layout, Destinations.of_fleet(fleet))
    files = {
        "nginx.conf": _render(env, TEMPLATES[0], context),
        "urlproxy.conf": _render(env, TEMPLATES[1], context),
        "urlproxy.json": json.dumps(settings, indent=2, sort_keys=True) + "\n",
        "redis.conf": redis_conf(redis_site(fleet, proxy, layout), plane, templates),
    }
    for name, (title, message) in ERROR_PAGES.items():
        page = {"title": title, "message": message, "code": name.split("-")[0], "brand": plane.brand}
        files[f"errors/{name}.html"] = _render(env, TEMPLATES[2], page)
    return files


@dataclass(frozen=True)
class RedisSite:
    """Where one proxy's redis-server listens and keeps its AOF, and whose Redis it copies."""

    name: str
    bind: tuple[str, ...]
    port: int
    directory: Path
    replica_of: tuple[str, int] | None = None


def redis_site(fleet: Fleet, proxy: Proxy, layout: Layout) -> RedisSite:
    """`proxy`'s Redis as its URL names it; a standby's replicates the active proxy's."""
    host, port, _ = _redis_address(proxy)
    active = fleet.proxy(None)
    replica_of = None if active.name == proxy.name else _redis_address(active)[:2]
    return RedisSite(f"proxy {proxy.name}", (host,), port, layout.redis_dir, replica_of)


def user_data(
    proxy: str, files: Mapping[str, str], commands: list[str], modes: Mapping[str, str] | None = None
) -> str:
    """A proxy VM's cloud-init user data (templates/cloud-init/proxy.yaml.j2): `files` (absolute
    path -> text) written with `modes` (path -> "0444", default "0644"), then `commands` run."""
    env = _environment(resource_dir("templates"))
    context = {
        "proxy": proxy,
        "files": files,
        "modes": dict(modes or {}),
        "commands": commands,
        "packages": list(PROXY_PACKAGES),
    }
    return _render(env, USER_DATA_TEMPLATE, context)


def redis_conf(site: RedisSite, plane: DataPlane, templates: Path | None = None) -> str:
    """The redis.conf of `site` (templates/redis/redis.conf.j2): memory limit, AOF, no eviction."""
    env = _environment(templates or resource_dir("templates"))
    # Protected mode refuses every peer but loopback when there is no password (Redis 7), even on
    # an address bound on purpose: only a loopback-only Redis can keep it on.
    protected = all(ipaddress.ip_address(address).is_loopback for address in site.bind)
    return _render(env, REDIS_TEMPLATE, {"site": site, "dp": plane, "protected": protected})


# The systemd files, by where they go under /etc (an operator's install) or /usr/lib (a package).
UNIT_TEMPLATES = {
    "systemd/system/proxylistener.service": "systemd/proxylistener.service.j2",
    "systemd/system/proxylistener.socket": "systemd/proxylistener.socket.j2",
    "systemd/system/kube2proxy.service": "systemd/kube2proxy.service.j2",
    "systemd/system/webservicemonitor.service": "systemd/webservicemonitor.service.j2",
    "systemd/system/nginx.service.d/toolforgectl.conf": "systemd/nginx-dropin.conf.j2",
    "sysusers.d/toolforgectl.conf": "systemd/sysusers.conf.j2",
    "tmpfiles.d/toolforgectl.conf": "systemd/tmpfiles.conf.j2",
}
NGINX = Path("/usr/sbin/nginx")  # Debian's, which nginx.service runs
STATE_DIR = Path("/var/lib/toolforgectl")  # webservicemonitor's StateDirectory=toolforgectl
# What ProtectHome= hides: a webservicemonitor whose tools live there cannot have it.
HOME_DIRS = (Path("/home"), Path("/root"), Path("/run/user"))


def render_units(fleet: Fleet, bin_dir: Path, templates: Path | None = None) -> dict[str, str]:
    """The daemons' systemd units, their users (sysusers.d), the data plane's run directory
    (tmpfiles.d) and nginx.service's drop-in, for programs installed in `bin_dir` (relative path
    under /etc -> text). The daemons read the system's fleet config, /etc/toolforgectl/config.yaml;
    `fleet` gives the settings the units must agree with (ports, nginx's user, the tools' homes)."""
    if not bin_dir.is_absolute():
        raise RenderError(f"the units need an absolute directory for the programs, not {str(bin_dir)!r}")
    env = _environment(templates or resource_dir("templates"))
    layout = Layout.system()
    tool_homes = _tool_homes(fleet.webservice.home)
    context = {
        "bin": bin_dir,
        "config": SYSTEM_PATH,
        "pl": fleet.proxylistener,
        "ws": fleet.webservice,
        "listen_stream": f"{_listen(fleet.proxylistener.listen)}:{fleet.proxylistener.port}",
        "writable": _monitor_writes(fleet, tool_homes),
        "protect_home": not any(tool_homes.is_relative_to(hidden) for hidden in HOME_DIRS),
        "nginx": NGINX,
        "nginx_conf": layout.nginx_conf,
        "run_dir": layout.run_dir,
        # nginx's own default when `dataplane.user` is empty (it switches its workers to nobody).
        "workers_user": fleet.dataplane.user or "nobody",
    }
    return {path: _render(env, template, context) for path, template in UNIT_TEMPLATES.items()}


def _tool_homes(home: str) -> Path:
    """The directory holding every tool's home: `webservice.home` above its `{tool}` part."""
    parts = Path(home).parts
    return Path(*parts[: next(i for i, part in enumerate(parts) if "{tool}" in part)])


def _monitor_writes(fleet: Fleet, tool_homes: Path) -> list[Path]:
    """Where webservicemonitor writes besides its state directory: the tools' homes (service.log,
    and what `webservice restart` writes as the tool), its state file and the local backend's spool."""
    settings = fleet.webservice
    wanted = {tool_homes, Path(settings.state_file).parent, Path(settings.local_spool)}
    return sorted(path for path in wanted if not path.is_relative_to(STATE_DIR))


def write_files(files: Mapping[str, str], layout: Layout, workers_user: str = "") -> None:
    """Write rendered `files` into the layout's conf dir and create its log and run dirs.

    The run dir is mode 0700 (the slow path's socket lives there and its server trusts X-Real-IP
    from whoever reaches it); when root writes it, it belongs to nginx's `workers_user`, who must
    enter it.
    """
    for directory in (layout.conf_dir, layout.log_dir, layout.run_dir, layout.redis_dir):
        directory.mkdir(parents=True, exist_ok=True)
    layout.run_dir.chmod(0o700)
    if os.geteuid() == 0 and workers_user:
        try:
            shutil.chown(layout.run_dir, workers_user)
        except LookupError:
            raise RenderError(
                f"nginx's workers' user {workers_user!r} does not exist here: create it, or set"
                f" dataplane.user, so that {layout.run_dir} can belong to it"
            ) from None
    for name, text in files.items():
        path = layout.conf_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def write_tree(files: Mapping[str, str], root: Path) -> None:
    """Write rendered `files` (relative path -> text) under `root`, readable by all (0644): units
    and sysusers.d/tmpfiles.d files hold no secret."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)


def lua_settings(
    proxy: Proxy, plane: DataPlane, layout: Layout, destinations: Destinations | None = None
) -> dict[str, Any]:
    """What lua/urlproxy/settings.lua reads: the `dataplane:` knobs, the proxy's Redis, the socket,
    and the fleet's destination rule (`Destinations.of_fleet`; without one: no proxy known)."""
    host, port, db = _redis_address(proxy)
    return {
        **{name: _json(getattr(plane, name)) for name in LUA_SETTINGS},
        "redis_host": host,
        "redis_port": port,
        "redis_db": db,
        "slow_socket": str(layout.slow_socket),
        "host_domains": host_domains(plane),
        **(destinations or Destinations()).lua_settings(),
    }


def host_domains(plane: DataPlane) -> list[str]:
    """Host mode: the domains whose direct subdomains name tools, from server_name's wildcards
    (`*.toolforge.org` or `.toolforge.org`: `.toolforge.org`). nginx's wildcard also matches deeper
    names (`b.a.toolforge.org`), which urlproxy.lua then gives no tool. None in path mode, or for
    `_` and regex names: any host's first label is its tool."""
    if plane.routing != "host":
        return []
    names = plane.server_name.lower().split()
    return sorted({name.removeprefix("*") for name in names if name.startswith(("*.", "."))})


def _json(value: object) -> object:
    """A setting as the Lua reads it from JSON: a list setting (a tuple here) as a list."""
    return list(value) if isinstance(value, tuple) else value


def _check_socket_path(path: Path) -> None:
    # sockaddr_un holds 107 bytes of path: nginx would fail later with a less helpful message.
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise RenderError(
            f"the slow path's socket {path} is longer than {UNIX_PATH_MAX} bytes: use a shorter run dir"
        )


def _redis_address(proxy: Proxy) -> tuple[str, int, int]:
    parts = urlsplit(proxy.redis)
    if parts.password:
        raise RenderError(f"proxy {proxy.name}: urlproxy.lua cannot use a Redis password yet")
    host = "127.0.0.1" if parts.hostname in (None, "localhost") else parts.hostname
    try:
        ipaddress.ip_address(host)
        db = int(parts.path.strip("/") or 0)
    except ValueError:
        raise RenderError(
            f"proxy {proxy.name}: Redis URL {proxy.redis!r} needs an IP address and a numeric db"
        ) from None
    return host, parts.port or DEFAULT_REDIS_PORT, db


def _context(proxy: Proxy, plane: DataPlane, layout: Layout) -> dict[str, Any]:
    return {
        "proxy": proxy,
        "dp": plane,
        "layout": layout,
        "listen_address": _listen(proxy.address),
        "internal_address": _listen(plane.internal_address or proxy.address),
        "https_port_suffix": "" if plane.https_port == 443 else f":{plane.https_port}",
    }


def _hop_marker(fleet: Fleet) -> dict[str, Any]:
    """The hop marker's header and the values that mean "one of us": every proxy's name."""
    return {"hop_header": HOP_HEADER, "fleet_proxies": [proxy.name for proxy in fleet.proxies]}


def _listen(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _environment(templates: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        where = _template_frame(sys.exc_info()[2]) or (name, 0)
        raise RenderError(f"{where[0]}:{where[1]}: {exc}") from None


def _template_frame(tb: TracebackType | None) -> tuple[str, int] | None:
    """The innermost template file and line of a rendering error (jinja2 rewrites tracebacks so)."""
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found
