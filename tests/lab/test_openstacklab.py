"""`toolforgectl lab up --proxies 2 --cloud openstack` (the slow tier: `make slow`): the two-proxy
lab with a real Keystone, Neutron, Nova and Designate (publishing to BIND) as its cloud, where
`toolforgectl failover` moves the floating IP in Neutron and the visitors with it, and the public
name's record in Designate, as BIND answers; and `lab down` leaves nothing running.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.support.lab import cli, proxy_lab
from toolforgectl.adapters import dns
from toolforgectl.adapters.cloud import sdk_connection
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core.config.dns import parse_resolver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def forwarded_by(lab: dict[str, Any], url: str) -> str:
    """Which proxy forwarded a visitor's GET of `url`: the hop header the proxy adds, as the
    sample tool echoes the headers it got."""
    context = ssl.create_default_context(cafile=next(iter(lab["proxies"].values()))["certificate"])
    with urllib.request.urlopen(url, timeout=30, context=context) as answer:
        return str(json.loads(answer.read())["headers"]["x-toolforgectl-hop"])


def routes(lab: dict[str, Any], proxy: str) -> dict[str, dict[str, str]]:
    """Every tool's routes in `proxy`'s Redis."""
    store = RouteStore.from_url(lab["proxies"][proxy]["redis"])
    return {tool: store.routes(tool) for tool in store.tools()}


def resolved(lab: dict[str, Any]) -> tuple[str, ...]:
    """What the lab's DNS server (BIND, fed by Designate) answers for the public name."""
    section = lab["fleet"]["dns"]
    return dns.ask(section["name"], parse_resolver(section["resolvers"][0])).addresses


def left_running(directory: Path) -> list[str]:
    """Every process whose command line or environment names the lab's directory (all the lab
    started, and all those started: RabbitMQ's helpers have only the environment)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        try:
            text = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if str(directory).encode() in text:
            found.append(f"{proc.name}: {(proc / 'cmdline').read_bytes()[:120]!r}")
    return found


def test_failover_moves_the_floating_ip_in_neutron_and_the_visitors_with_it(tmp_path: Path) -> None:
    where = tmp_path / "lab"
    with proxy_lab(where, 2, cloud="openstack") as lab:
        status = run_cli("lab", "status", "--dir", str(where), "--json")
        shown = json.loads(status.stdout)["data"]
        assert shown["running"] and shown["cloud"]["kind"] == "openstack", status.stdout
        cloud = lab["fleet"]["cloud"]
        neutron = sdk_connection(cloud["clouds_yaml"], cloud["name"])  # the project user's view
        ports = {name: next(neutron.network.ports(device_id=neutron.compute.find_server(name).id)).id
                 for name in ("proxy-01", "proxy-02")}  # fmt: skip
        (fip,) = neutron.network.ips(floating_ip_address=cloud["floating_ip"])
        url = lab["tools"]["hello"]["url"]
        assert url.startswith(f"https://{cloud['floating_ip']}:")  # visitors come through the floating IP
        assert fip.port_id == ports["proxy-01"]
        assert forwarded_by(lab, url) == "proxy-01"
        assert resolved(lab) == (lab["proxies"]["proxy-01"]["address"],)
        before = routes(lab, "proxy-01")

        done = cli(lab, "failover", "--yes", "--reason", "test")

        assert done.returncode == 0, done.stderr
        now = neutron.network.get_ip(fip.id)
        assert now.port_id == ports["proxy-02"] and now.revision_number > fip.revision_number
        assert forwarded_by(lab, url) == "proxy-02"
        assert resolved(lab) == (lab["proxies"]["proxy-02"]["address"],), "BIND answers the new proxy"
        assert routes(lab, "proxy-02") == before and set(before) >= {"hello", "echo"}
        neutron.close()
    assert left_running(where) == []
