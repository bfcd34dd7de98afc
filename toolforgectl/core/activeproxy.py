"""Which proxy is active: the one reader of /etc/active-proxy, and the one policy for reading it.

Puppet writes /etc/active-proxy on every host from hiera `profile::toolforge::active_proxy_host`:
a short host name without a trailing newline. proxylistener (its standby reply), kube2proxy (whether
it may write), webservice-runner and portreleaser (where to register) all read it through `read`, so
the file means the same to each of them, whatever state it is in:

    the file                                  means
    names one host (an IP address or a        that proxy is active
      DNS name; blanks around it ignored)
    is missing                                the file says nothing: the fleet config's
                                              `active_proxy` is active, for a reader that has a
                                              config; a grid node has none: ActiveProxyError
    is empty, or only blanks                  the kill switch: no proxy is active. Clients skip
                                              registration, kube2proxy writes nothing,
                                              proxylistener's standby reply says registration is off
    cannot be read, is not UTF-8, has more    ActiveProxyError: nobody guesses. Clients fail with
      than one line, or is not a host name      one error line, kube2proxy writes nothing and logs
                                              why, proxylistener's standby reply names no proxy

A missing file falls back and a broken one does not: a host without the file was never set up
for it (the lab, a laptop, a fresh proxy), while a broken file is a failover gone wrong, where a
guess could make two proxies write routes at once. The file is read on every call (it is tiny), so
a failover needs no restart; callers that ask often (kube2proxy) rate-limit themselves.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolforgectl.core.errors import ActiveProxyError

DEFAULT_FILE = "/etc/active-proxy"
HOST_MAX = 253  # the longest DNS name
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

Fallback = str | Callable[[], str | None] | None


@dataclass(frozen=True)
class ActiveProxy:
    """The answer: the active proxy's host, or None when the kill switch is on; and where it came from."""

    host: str | None
    source: str

    @property
    def switched_off(self) -> bool:
        """Whether the file is empty: no proxy is active, and nobody registers anywhere."""
        return self.host is None


def read(path: str | Path = DEFAULT_FILE, fallback: Fallback = None) -> ActiveProxy:
    """The active proxy as `path` states it, else (only if `path` is missing) as `fallback` does.

    `fallback` is the fleet config's `active_proxy`, or a function returning it (called only when
    needed, so a config edited meanwhile is seen). Raises ActiveProxyError as the policy above says.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(HOST_MAX + 2)  # enough to tell a host name from anything longer
    except FileNotFoundError:
        return _fallback(path, fallback)
    except OSError as exc:
        raise ActiveProxyError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(_text(path, data), str(path))


def parse(text: str, source: str) -> ActiveProxy:
    """What a file's content `text` means, by the policy above (for a copy read elsewhere, e.g. over
    SSH by a failover); `source` names it in errors."""
    text = text.strip()
    return ActiveProxy(host(text, source) if text else None, source)


def _fallback(path: str | Path, fallback: Fallback) -> ActiveProxy:
    name = fallback() if callable(fallback) else fallback
    if not name:
        raise ActiveProxyError(f"{path} does not exist, so the active proxy is not known here")
    return ActiveProxy(name, "the fleet config's active_proxy")


def _text(path: str | Path, data: bytes) -> str:
    if len(data) > HOST_MAX + 1:
        raise ActiveProxyError(f"{path}: longer than a host name")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ActiveProxyError(f"{path}: not UTF-8 text") from None


def host(text: str, source: str) -> str:
    """`text` if it is one IP address or DNS name; ActiveProxyError naming `source` otherwise."""
    if "\n" in text:
        raise ActiveProxyError(f"{source}: more than one line; it must name one host")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if len(text) > HOST_MAX or not all(_LABEL.fullmatch(label) for label in text.split(".")):
        raise ActiveProxyError(f"{source}: {text[:40]!r} is not a host name")
    return text


def names_proxy(active: str, name: str, address: str) -> bool:
    """Whether `active` (as `read` returned it) is the proxy called `name` at `address`: its name,
    its address, or a DNS name whose first label is its name (puppet writes the short host name,
    an operator may write the full one)."""
    return active in (name, address) or active.split(".", maxsplit=1)[0] == name
