"""The lab's OpenStack API as the lab runs it: its own process, state kept in a file across restarts."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.lab.cloudlab import FLOATING_IP, SERVERS
from toolforgectl.adapters.cloud import Cloud
from toolforgectl.adapters.processes import Process, free_port, spawn
from toolforgectl.core import config
from toolforgectl.core.errors import CloudConflictError, CloudError


def start_api(directory: Path, port: int) -> Process:
    argv = [sys.executable, "-m", "toolforgectl.lab.cloudapi", "--state", str(directory / "cloud.json")]
    argv += ["--clouds-yaml", str(directory / "clouds.yaml"), "--cloud", "lab", "--port", str(port)]
    argv += [f"--server={name}={fixed_ip}" for name, fixed_ip in SERVERS.items()]
    argv += [f"--floating-ip={FLOATING_IP}=proxy-01"]
    return spawn("cloudapi", argv, directory / "cloudapi.log", "127.0.0.1", port)


def test_a_restarted_api_keeps_the_association_and_the_client_authenticates_again(tmp_path: Path) -> None:
    port = free_port(ports=range(20000, 32000))
    api = start_api(tmp_path, port)
    settings = config.Cloud(name="lab", floating_ip=FLOATING_IP, clouds_yaml=str(tmp_path / "clouds.yaml"))
    cloud = Cloud.connect(settings)
    try:
        assert cloud.floating_ip(FLOATING_IP).fixed_ip == SERVERS["proxy-01"]
        cloud.move_floating_ip(FLOATING_IP, "proxy-02", 1)

        api.stop()
        api = start_api(tmp_path, port)  # the seeds are for a new cloud: this one has its file

        after = cloud.floating_ip(FLOATING_IP)  # the token died with the old process
        assert (after.fixed_ip, after.revision) == (SERVERS["proxy-02"], 2)
    finally:
        cloud.close()
        api.stop()


def control(port: int, action: str, **body: Any) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/lab/{action}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def test_faults_reach_an_api_in_its_own_process_over_http(tmp_path: Path) -> None:
    port = free_port(ports=range(20000, 32000))
    api = start_api(tmp_path, port)
    cloud = Cloud.connect(
        config.Cloud(name="lab", floating_ip=FLOATING_IP, clouds_yaml=str(tmp_path / "clouds.yaml"))
    )
    try:
        control(port, "touch", address=FLOATING_IP, before={"method": "PUT", "path": "floatingips"})
        with pytest.raises(CloudConflictError, match=r"changed since it was read: .* at revision 2,"):
            cloud.move_floating_ip(FLOATING_IP, "proxy-02", 1)

        control(port, "fail-next", count=1, status=502, method="GET", path="ports")
        with pytest.raises(
            CloudError, match=r"listing the ports of server proxy-02 \(Neutron\) failed: HTTP 502"
        ):
            cloud.move_floating_ip(FLOATING_IP, "proxy-02", 2)

        control(port, "expire-tokens")
        assert cloud.move_floating_ip(FLOATING_IP, "proxy-02", 2).fixed_ip == SERVERS["proxy-02"]
    finally:
        cloud.close()
        api.stop()
