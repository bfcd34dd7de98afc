"""The `dns:` section of the fleet config: the record that names the active proxy's own address.

    dns:
      name: tools.wmflabs.org.          # the A record the internal resolvers answer for the public name
      backend: designate                # change it through the cloud's DNS API (Designate), or: command
      zone: wmflabs.org.                # designate: the zone that holds the record
      command: /usr/local/sbin/set-proxy-record {name} {address}   # command: run to change it
      resolvers: [172.20.255.1:53, 172.20.255.2]   # each must answer the new address afterwards
      addresses: {proxy-01: 172.16.0.10}   # optional: the address for a proxy; default its `address`

Inside the cloud, the public name must lead to the active proxy's own address (the floating IP is
not reachable from there), so a failover changes the record and then asks every listed resolver
until each answers the new address (within the failover playbook's `timeout` for the step). The
section is optional: without it the failover's DNS step has nothing to do. The command backend's
`command` is split like a shell line first and each word filled in after, so an address can never
become two arguments; it may use {name}, {zone}, {address} (the new one) and {old_address}.
docs/runbooks/failover.md explains each setting.
"""

from __future__ import annotations

import ipaddress
import shlex
import string
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator
from pydantic.dataclasses import dataclass

from toolforgectl.core import validate
from toolforgectl.core.config.schema import SECTION, Text, invalid, one_of
from toolforgectl.core.errors import ValidationError

BACKENDS = ("designate", "command")
PLACEHOLDERS = ("name", "zone", "address", "old_address")
DNS_PORT = 53


def _fqdn(value: str) -> str:
    """A DNS name in the absolute form Designate uses (one trailing dot), lowercase."""
    bare = value.lower().removesuffix(".")
    try:
        validate.domain_name(bare)
    except ValidationError as exc:
        raise invalid(f"must be a DNS name such as tools.wmflabs.org.: {exc}") from None
    return bare + "."


def _fqdn_or_empty(value: str) -> str:
    return _fqdn(value) if value else value


def _ip_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise invalid(f"must be an IP address, not {value!r}") from None
    return value


def parse_resolver(value: str) -> tuple[str, int]:
    """`host[:port]` (IPv6 in brackets: `[::1]:53`) as (address, port); ValueError when it is not."""
    host, port = value, str(DNS_PORT)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(value)
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    ipaddress.ip_address(host)  # a resolver is asked directly: an address, not a name to resolve
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(value)
    return host, int(port)


def _resolver(value: str) -> str:
    try:
        parse_resolver(value)
    except ValueError:
        raise invalid(f"must be a resolver's address[:port] such as 172.20.255.1:53, not {value!r}") from None
    return value


def _command(value: str) -> str:
    if not value:
        return value
    try:
        words = shlex.split(value)
        fields = [field for word in words for _, field, _, _ in string.Formatter().parse(word) if field]
    except ValueError as exc:
        raise invalid(f"is not a usable command line: {exc}") from None
    unknown = sorted(set(fields) - set(PLACEHOLDERS))
    if unknown:
        known = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
        raise invalid(f"uses {', '.join(f'{{{name}}}' for name in unknown)}; it may use only {known}")
    return value


@dataclass(frozen=True, config=SECTION)
class Dns:
    """The record that follows the active proxy, how it is changed, and who must answer it after."""

    name: Annotated[Text, AfterValidator(_fqdn)]
    resolvers: tuple[Annotated[Text, AfterValidator(_resolver)], ...]
    backend: Annotated[Text, one_of(*BACKENDS)] = "designate"
    zone: Annotated[Text, AfterValidator(_fqdn_or_empty)] = ""
    command: Annotated[Text, AfterValidator(_command)] = ""
    addresses: dict[Text, Annotated[Text, AfterValidator(_ip_address)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _what_the_backend_needs(self) -> Dns:
        if not self.resolvers:
            raise invalid("needs at least one resolver in `resolvers`, to verify the change")
        if self.backend == "designate":
            if not self.zone:
                raise invalid("needs `zone` (the Designate zone holding the record) for backend designate")
            if not self.name.endswith("." + self.zone) and self.name != self.zone:
                raise invalid(f"`name` {self.name} is not in `zone` {self.zone}")
        if self.backend == "command" and not self.command:
            raise invalid("needs `command` (the command that changes the record) for backend command")
        return self

    def address(self, proxy: str, default: str) -> str:
        """The address the record holds while `proxy` is active: as `addresses` says, else `default`
        (the proxy's own address)."""
        return self.addresses.get(proxy, default)

    def resolver_addresses(self) -> list[tuple[str, int]]:
        """Every resolver as (address, port)."""
        return [parse_resolver(resolver) for resolver in self.resolvers]
