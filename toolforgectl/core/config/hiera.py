"""The `hiera:` section of the fleet config: where the fleet's hiera lives and which key names the
active proxy.

    hiera:
      backend: file                      # or http
      path: /srv/hiera/toolforge.yaml    # file backend (in a git checkout: one commit per change)
      url: https://enc.example/v1/prefix/toolsbeta   # http backend: GET/PUT of the prefix's YAML
      active_proxy_key: profile::toolforge::active_proxy_host
      proxies_key: profile::toolforge::proxies   # the list of proxies (deploy adds, remove removes)

The section is optional; `toolforgectl hiera ...` says it is missing (exit 2) when it is not there.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import model_validator
from pydantic.dataclasses import dataclass

from toolforgectl.core.config.schema import SECTION, Seconds, Text, invalid, one_of

BACKENDS = ("file", "http")
ACTIVE_PROXY_KEY = "profile::toolforge::active_proxy_host"
PROXIES_KEY = "profile::toolforge::proxies"  # formerly toollabs::proxy::proxies


@dataclass(frozen=True, config=SECTION)
class Hiera:
    """Where hiera is read and written: a YAML file, or a Puppet-ENC-style HTTP API."""

    backend: Annotated[Text, one_of(*BACKENDS)]
    path: Text = ""  # file backend
    url: Text = ""  # http backend: the prefix's YAML document
    active_proxy_key: Text = ACTIVE_PROXY_KEY
    proxies_key: Text = PROXIES_KEY
    timeout: Seconds = 10.0  # http backend: per request

    @model_validator(mode="after")
    def _where_for_the_backend(self) -> Hiera:
        if self.backend == "file" and not self.path:
            raise invalid("needs `path` (the hiera YAML file) for the file backend")
        if self.backend == "http" and not self.url.startswith(("http://", "https://")):
            raise invalid("needs `url` (http:// or https://) for the http backend")
        return self
