"""The fleet configuration: one YAML file loaded once into frozen, typed objects.

    proxies:                      # every proxy VM of the fleet
      - name: proxy-01
        address: 172.16.0.10      # where its nginx, proxylistener and Redis answer
        redis: redis://172.16.0.10:6379/0
        active_proxy_file: /etc/active-proxy   # where this host keeps it (default)
    active_proxy: proxy-01        # holds the floating IP; its Redis takes the writes
    proxylistener: {identity: [token], port: 8282}   # optional; see daemons.py
    kube2proxy: {kubeconfig: /etc/kube2proxy/kubeconfig}   # optional; see daemons.py
    dataplane: {routing: path}    # nginx + urlproxy.lua settings (optional; see dataplane.py)
    hiera: {backend: file, path: /srv/hiera/toolforge.yaml}   # optional; see hiera.py
    operations: {state_dir: /var/lib/toolforgectl/runs}       # optional; see operations.py
    cloud: {name: eqiad1, floating_ip: 185.15.56.11}   # optional; see cloud.py
    proxies_dir: /etc/toolforgectl/proxies.d   # optional: the proxies `deploy proxy` added
    dns: {name: tools.wmflabs.org., zone: wmflabs.org., resolvers: [172.20.255.1]}   # optional; dns.py
    webservice: {default_backend: gridengine}   # webservice + webservicemonitor (webservice.py)

Any problem is one ConfigError `file:line: message`; lookup.py says where the file is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import pydantic
from pydantic import AfterValidator, Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from toolforgectl.core import activeproxy
from toolforgectl.core.config import document, schema
from toolforgectl.core.config.cloud import Cloud
from toolforgectl.core.config.daemons import DEFAULT_REDIS_PORT, Kube2proxy, ProxyListener
from toolforgectl.core.config.dataplane import DataPlane
from toolforgectl.core.config.dns import Dns
from toolforgectl.core.config.hiera import Hiera
from toolforgectl.core.config.operations import Operations
from toolforgectl.core.config.remote import Remote, Ssh, SshHost, parse_host
from toolforgectl.core.config.schema import EMPTY_IS_DEFAULT, SECTION, Text, invalid
from toolforgectl.core.config.webservice import Webservice
from toolforgectl.core.errors import ConfigError

EVERY_PROXY = "@proxies"  # a member of a `remote.groups` group: every proxy of the fleet
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})")


def _host_name(name: str) -> str:
    # The name is the VM's host name, and the data plane's hop marker (a header value in nginx.conf).
    if not _HOST_NAME.fullmatch(name):
        raise invalid("must be a host name (letters, digits, '.', '-' and '_')")
    return name


@dataclass(frozen=True, config=SECTION)
class Proxy:
    """One proxy VM: its name, address, Redis, and where it keeps its active-proxy file."""

    name: Annotated[Text, AfterValidator(_host_name)]
    address: Text = "127.0.0.1"
    redis: Text = Field(default="", validate_default=True)  # empty: redis://<address>:6379/0
    # What the daemons on this host read (core/activeproxy.py), and `proxy list` compares; the
    # lab keeps one per proxy in its directory.
    active_proxy_file: Text = activeproxy.DEFAULT_FILE
    ssh: Annotated[Ssh, EMPTY_IS_DEFAULT] = Field(default_factory=Ssh)  # where its sshd answers

    @field_validator("redis")
    @classmethod
    def _redis_on_the_address(cls, redis: str, info: ValidationInfo) -> str:
        if redis or "address" not in info.data:
            return redis
        return f"redis://{info.data['address']}:{DEFAULT_REDIS_PORT}/0"


def _some_unique_proxies(proxies: tuple[Proxy, ...]) -> tuple[Proxy, ...]:
    if not proxies:
        raise invalid("must list at least one proxy")
    names = [proxy.name for proxy in proxies]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise invalid(f"must have unique names: {', '.join(map(repr, twice))} is listed twice")
    return proxies


@dataclass(frozen=True, config=SECTION)
class Fleet:
    """The whole fleet as the config file describes it."""

    proxies: Annotated[tuple[Proxy, ...], AfterValidator(_some_unique_proxies)]
    active_proxy: Text = Field(default="", validate_default=True)  # empty: the first proxy
    # Which file this came from, for error messages; not a setting.
    source: Text = Field(default="<built-in>", exclude=True)
    proxylistener: Annotated[ProxyListener, EMPTY_IS_DEFAULT] = Field(default_factory=ProxyListener)
    kube2proxy: Annotated[Kube2proxy, EMPTY_IS_DEFAULT] = Field(default_factory=Kube2proxy)
    dataplane: Annotated[DataPlane, EMPTY_IS_DEFAULT] = Field(default_factory=DataPlane)
    hiera: Hiera | None = None  # optional; `toolforgectl hiera` needs it (see hiera.py)
    operations: Annotated[Operations, EMPTY_IS_DEFAULT] = Field(default_factory=Operations)
    webservice: Annotated[Webservice, EMPTY_IS_DEFAULT] = Field(default_factory=Webservice)
    remote: Annotated[Remote, EMPTY_IS_DEFAULT] = Field(default_factory=Remote)
    cloud: Cloud | None = None  # only commands that move the floating IP need it
    # A directory of one NAME.yaml per deployed proxy, which `deploy proxy` writes and `proxy
    # remove` deletes: those proxies join `proxies:` (empty: none).
    proxies_dir: Text = ""
    dns: Dns | None = None  # optional: the record a failover points at the new active proxy

    @field_validator("active_proxy")
    @classmethod
    def _one_of_the_proxies(cls, active: str, info: ValidationInfo) -> str:
        proxies: tuple[Proxy, ...] = info.data.get("proxies", ())
        names = [proxy.name for proxy in proxies]
        if not names:  # the proxies were refused: that is the error to show
            return active
        if not active:
            return names[0]
        if active not in names:
            raise invalid(f"must be one of the proxies ({', '.join(names)}), not {active!r}")
        return active

    @field_validator("cloud")
    @classmethod
    def _servers_of_the_proxies(cls, cloud: Cloud | None, info: ValidationInfo) -> Cloud | None:
        names = [proxy.name for proxy in info.data.get("proxies", ())]
        strays = sorted(set(cloud.servers) - set(names)) if cloud and names else []
        if strays:
            listed = ", ".join(map(repr, strays))
            raise invalid(
                f"lists a server for {listed}, which is not one of the proxies ({', '.join(names)})"
            )
        return cloud

    @field_validator("dns")
    @classmethod
    def _addresses_of_the_proxies(cls, dns: Dns | None, info: ValidationInfo) -> Dns | None:
        names = [proxy.name for proxy in info.data.get("proxies", ())]
        if dns and dns.backend == "designate" and info.data.get("cloud") is None and names:
            raise invalid("has backend designate, which needs the `cloud:` section (whose Designate it is)")
        strays = sorted(set(dns.addresses) - set(names)) if dns and names else []
        if strays:
            listed = ", ".join(map(repr, strays))
            raise invalid(
                f"lists an address for {listed}, which is not one of the proxies ({', '.join(names)})"
            )
        return dns

    def needs_cloud(self) -> Cloud:
        """The `cloud:` section, for a command that cannot work without it."""
        if self.cloud is None:
            raise ConfigError(f"{self.source}: this command needs a `cloud:` section (see docs/cloud.md)")
        return self.cloud

    def proxy(self, name: str | None = None) -> Proxy:
        """The proxy called `name`, or the active one when `name` is None."""
        wanted = name or self.active_proxy
        for proxy in self.proxies:
            if proxy.name == wanted:
                return proxy
        known = ", ".join(p.name for p in self.proxies)
        raise ConfigError(f"{self.source}: no proxy named {wanted!r} (known: {known})")

    def need_hiera(self) -> Hiera:
        """The `hiera:` section; a ConfigError (exit 2) saying it is missing when it is not there."""
        if self.hiera is None:
            raise ConfigError(f"{self.source}: no `hiera:` section; add one (docs/config.md) to use hiera")
        return self.hiera

    def ssh_hosts(self, names: str | tuple[str, ...]) -> tuple[SshHost, ...]:
        """The hosts of group `names` (or the proxies / host[:port] it lists), where their sshd answers.

        A group name expands to its members; a proxy's name means that proxy's sshd (its `ssh`
        setting, else its address); `@proxies` means every proxy of the fleet; anything else is
        `host[:port]`."""
        members = self.remote.groups.get(names, (names,)) if isinstance(names, str) else names
        by_name = {proxy.name: proxy for proxy in self.proxies}
        if EVERY_PROXY in members:  # follows the fleet: a deployed proxy joins, a removed one leaves
            members = tuple(m for m in members if m != EVERY_PROXY) + tuple(by_name)
        hosts = []
        for member in members:
            proxy = by_name.get(member)
            if proxy is None:
                hosts.append(parse_host(member))
            else:
                hosts.append(SshHost(proxy.name, proxy.ssh.host or proxy.address, proxy.ssh.port))
        return tuple(hosts)

    def proxy_at(self, host: str) -> Proxy | None:
        """The proxy that `host` (as an active-proxy file names it) means, or None when it names
        none of this fleet's (activeproxy.names_proxy: its name, address or full DNS name)."""
        for proxy in self.proxies:
            if activeproxy.names_proxy(host, proxy.name, proxy.address):
                return proxy
        return None


def active_proxy_file(override: str | None, proxy: Proxy | None) -> str:
    """Which active-proxy file a daemon reads: its section's `active_proxy_file` when set (one
    file for every proxy this config serves), else its own proxy's, else /etc/active-proxy."""
    if override:
        return override
    return proxy.active_proxy_file if proxy else activeproxy.DEFAULT_FILE


_FLEET = pydantic.TypeAdapter(Fleet)


def deployed(directory: Path) -> list[dict[str, object]]:
    """The entries of `proxies_dir`: one `NAME.yaml` per proxy `deploy proxy` added (the same keys
    as an entry of `proxies:`), in name order; a missing directory is an empty one."""
    found = []
    for path in sorted(directory.expanduser().glob("*.yaml")):
        entry = document.parse(document.read(path), str(path)).data
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}:1: expected a mapping (name, address, ...), as an entry of proxies:")
        found.append(entry)
    return found


def load(path: Path) -> Fleet:
    """Read and check the fleet config at `path`; any problem is one ConfigError naming it."""
    return parse(document.read(path), str(path))


def parse(text: str, source: str) -> Fleet:
    """Build a Fleet from YAML `text`; `source` names it in errors."""
    doc = document.parse(text, source)
    if not isinstance(doc.data, dict):
        kind = "nothing" if doc.data is None else type(doc.data).__name__
        raise ConfigError(
            f"{source}:{doc.line(())}: expected a mapping of settings at the top level, not {kind}"
        )
    for key in doc.data:
        if key == "source":  # a field of Fleet, but not one the file may set
            raise ConfigError(f"{source}:{doc.line((key,))}: unknown setting 'source'")
    data = {**doc.data, "source": source}
    if isinstance(data.get("proxies_dir"), str) and isinstance(data.get("proxies"), list):
        data["proxies"] = [*data["proxies"], *deployed(Path(data["proxies_dir"]))]
    try:
        return _FLEET.validate_python(data)
    except pydantic.ValidationError as exc:
        raise schema.problem(exc, doc, Fleet) from None
