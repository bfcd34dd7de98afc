"""The `cloud:` section of the fleet config: which OpenStack cloud holds the floating IP, and where.

    cloud:
      name: eqiad1                             # the entry of clouds.yaml to use
      clouds_yaml: /etc/openstack/clouds.yaml  # optional; else openstacksdk's own search path
      floating_ip: 185.15.56.11                # the public address that follows the active proxy
      servers: {proxy-01: tools-proxy-05}      # optional; a proxy's server name (or id), default
                                               # the proxy's own name
      flavor: g3.cores2.ram4.disk20            # deploy proxy's defaults (--flavor, --image,
      image: debian-12.0-bookworm              #   --network): Nova's flavor and image names or
      network: lan-flat-cloudinstances2b       #   ids, Neutron's network id

Credentials, region and API timeouts stay in clouds.yaml, where openstacksdk and the `openstack`
command read them, so one file serves both. docs/cloud.md explains each setting.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic.dataclasses import dataclass

from toolforgectl.core.config.schema import SECTION, Text, invalid


def _ip_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise invalid(f"must be an IP address such as 185.15.56.11, not {value!r}") from None
    return value


def _not_empty(value: str) -> str:
    if not value:
        raise invalid("must not be empty")
    return value


@dataclass(frozen=True, config=SECTION)
class Cloud:
    """Where the fleet's floating IP lives: a clouds.yaml entry, the address, the proxies' servers."""

    name: Annotated[Text, AfterValidator(_not_empty)]
    floating_ip: Annotated[Text, AfterValidator(_ip_address)]
    clouds_yaml: Text | None = None  # None: openstacksdk looks where it always does
    servers: dict[Text, Annotated[Text, AfterValidator(_not_empty)]] = Field(default_factory=dict)
    # What `deploy proxy` creates a server from, unless --flavor, --image, --network say otherwise.
    flavor: Text = ""
    image: Text = ""
    network: Text = ""

    def server(self, proxy: str) -> str:
        """The server name (or id) of proxy `proxy` in the cloud: as `servers` says, else its name."""
        return self.servers.get(proxy, proxy)
