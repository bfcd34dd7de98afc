"""The lab's OpenStack API as the lab runs it: its own process, state kept in a file across restarts."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.lab.cloudlab import FLOATING_IP, SERVERS
from toolforgectl.adapters.cloud import Cloud
from toolforgectl.adapters.processes import Process, free_port, spawn
from toolforgectl.core import config


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
