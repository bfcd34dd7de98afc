"""The lab's cloud for tests: two proxy servers and a floating IP behind the real HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from toolforgectl.adapters.cloud import Cloud
from toolforgectl.core import config
from toolforgectl.lab.cloudapi import CloudApi
from toolforgectl.lab.cloudstate import CloudState

FLOATING_IP = "127.0.0.10"
SERVERS = {"proxy-01": "127.0.0.11", "proxy-02": "127.0.0.12"}


@dataclass
class LabCloud:
    """A running lab cloud API, its state, and the fleet's `cloud:` settings that reach it."""

    state: CloudState
    api: CloudApi
    settings: config.Cloud

    def connect(self) -> Cloud:
        """A new adapter connection, as a command would make one."""
        return Cloud.connect(self.settings)

    def points_at(self) -> str | None:
        """Where the cloud itself says the floating IP points (not through the adapter)."""
        fip = self.state.floating_ip(FLOATING_IP)
        assert fip is not None
        return fip.fixed_ip


@contextmanager
def running_cloud(directory: Path, token_ttl: float = 3600.0) -> Iterator[LabCloud]:
    """The floating IP on proxy-01, the API on a free loopback port, a clouds.yaml for it."""
    directory.mkdir(parents=True, exist_ok=True)
    state = CloudState(path=directory / "cloud.json")
    for name, fixed_ip in SERVERS.items():
        state.add_server(name, fixed_ip)
    state.add_floating_ip(FLOATING_IP, "proxy-01")
    api = CloudApi(state, token_ttl=token_ttl).start()
    try:
        clouds_yaml = api.write_clouds_yaml(directory / "clouds.yaml", "lab")
        yield LabCloud(
            state, api, config.Cloud(name="lab", floating_ip=FLOATING_IP, clouds_yaml=str(clouds_yaml))
        )
    finally:
        api.stop()
