"""The `remote:` section of the fleet config: how toolforgectl reaches the fleet's hosts over SSH.

    remote:
      user: root
      identity_file: ~/.ssh/toolforgectl_ed25519   # empty: the SSH agent and ~/.ssh's keys
      known_hosts: ~/.ssh/known_hosts              # host keys are checked against this file
      accept_new_host_keys: false   # true: a host never seen is trusted on first use and recorded
      sudo: false                   # commands that change a host run under `sudo -n`
      connect_timeout: 10
      timeout: 60                   # per command
      batch: 10                     # hosts at once, as the original runbook's clush batches
      groups:                       # host groups: proxy names, or host[:port]
        proxies: [proxy-01, proxy-02]
        webgrid: [webgrid-01.tools.eqiad1.wikimedia.cloud]
      converge:                     # how `converge` re-converges a group: a command (the puppet
        webgrid: run-puppet-agent   #   agent), or our rendered data plane pushed and reloaded:
        proxies: {push: dataplane}  #   see Push below
      active_proxy_files:           # groups whose hosts keep an active-proxy file that a
        webgrid: /etc/active-proxy  #   failover rewrites (each proxy's own is proxies[].active_proxy_file)

A host key that differs from the one recorded is always refused: after a floating IP or a VM moves,
that is what a man in the middle looks like too. docs/remote.md says how to trust a new key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, Field, StrictBool, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from toolforgectl.core.config.schema import SECTION, Count, Port, Seconds, Text, Texts, invalid

DEFAULT_SSH_PORT = 22
T = TypeVar("T")


def _some_hosts(groups: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    empty = sorted(name for name, hosts in groups.items() if not hosts)
    if empty:
        raise invalid(f"must list at least one host per group ({', '.join(empty)} is empty)")
    return groups


@dataclass(frozen=True, config=SECTION)
class Ssh:
    """Where one proxy's sshd answers; an empty host means the proxy's address."""

    host: Text = ""
    port: Port = DEFAULT_SSH_PORT


@dataclass(frozen=True, config=SECTION)
class Push:
    """A group whose hosts are proxies and get our rendered data plane (nginx, urlproxy) pushed:
    `nginx -t` on the host first, reloaded only when that passes (else the old files come back).

    `root` empty: the files go where a proxy VM keeps them (render.Layout.system()); else under
    `root` with `{proxy}` replaced by the proxy's name, laid out as render.Layout.under does (the
    lab). In `check`, `reload` and `restart`, `{nginx_conf}` and `{run_dir}` are the host's paths."""

    push: Literal["dataplane"]
    root: Text = ""
    check: Text = "nginx -t -q -c {nginx_conf}"
    reload: Text = "nginx -s reload -c {nginx_conf}"
    # After a reload: what reads the fleet config (the proxy list) restarts and learns of a
    # proxy added or removed. `{proxy}` is the proxy's name.
    restart: Text = "systemctl try-restart proxylistener"


@dataclass(frozen=True, config=SECTION)
class Remote:
    """How to reach the fleet's hosts; docs/remote.md explains each setting."""

    user: Text = "root"
    identity_file: Text = ""
    known_hosts: Text = "~/.ssh/known_hosts"
    accept_new_host_keys: StrictBool = False
    sudo: StrictBool = False
    connect_timeout: Seconds = 10.0
    timeout: Seconds = 60.0
    batch: Count = 10
    groups: Annotated[Mapping[str, Texts], AfterValidator(_some_hosts)] = Field(default_factory=dict)
    converge: Mapping[str, Text | Push] = Field(default_factory=dict)
    active_proxy_files: Mapping[str, Text] = Field(default_factory=dict)

    @field_validator("converge", "active_proxy_files")
    @classmethod
    def _for_known_groups(cls, converge: Mapping[str, T], info: ValidationInfo) -> Mapping[str, T]:
        groups = info.data.get("groups", {})
        unknown = sorted(set(converge) - set(groups))
        if unknown:
            known = ", ".join(sorted(groups)) or "none"
            names = ", ".join(unknown)
            raise invalid(f"names a group that `groups` does not define: {names} (known: {known})")
        return converge


@dataclasses.dataclass(frozen=True)
class SshHost:
    """One host to reach: the name operators know it by, and where its sshd answers."""

    name: str
    host: str
    port: int = DEFAULT_SSH_PORT

    def __str__(self) -> str:
        return self.name


def parse_host(member: str) -> SshHost:
    """`host`, `host:port` or `[v6 address]:port`, as a group lists a host that is not a proxy."""
    host, port = member, DEFAULT_SSH_PORT
    if member.startswith("["):
        host, _, rest = member[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif member.count(":") == 1:
        name, _, number = member.partition(":")
        if number.isdigit():
            host, port = name, int(number)
    return SshHost(member, host, port)
