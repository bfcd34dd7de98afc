"""The fleet's `remote:` section: host groups resolve to where each host's sshd answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolforgectl.core import config
from toolforgectl.core.config.remote import SshHost
from toolforgectl.core.errors import ConfigError

FLEET = """
proxies:
  - name: proxy-01
    address: 172.16.0.10
  - name: proxy-02
    address: 172.16.0.11
    ssh: {host: 127.0.0.12, port: 2222}
remote:
  groups:
    proxies: [proxy-01, proxy-02]
    webgrid: [webgrid-01.example, "webgrid-02.example:2200", "[2001:db8::5]:22022"]
  converge:
    webgrid: run-puppet-agent
"""


def test_a_group_lists_proxies_by_name_and_other_hosts_by_address() -> None:
    fleet = config.parse(FLEET, "fleet.yaml")
    assert fleet.ssh_hosts("proxies") == (
        SshHost("proxy-01", "172.16.0.10", 22),
        SshHost("proxy-02", "127.0.0.12", 2222),
    )
    assert fleet.ssh_hosts("webgrid") == (
        SshHost("webgrid-01.example", "webgrid-01.example", 22),
        SshHost("webgrid-02.example:2200", "webgrid-02.example", 2200),
        SshHost("[2001:db8::5]:22022", "2001:db8::5", 22022),
    )
    assert fleet.ssh_hosts(("proxy-02",)) == (SshHost("proxy-02", "127.0.0.12", 2222),)
    assert fleet.remote.converge == {"webgrid": "run-puppet-agent"}


def test_the_defaults_check_host_keys_strictly_without_sudo() -> None:
    fleet = config.parse("proxies: [{name: proxy-01}]\n", "fleet.yaml")
    assert fleet.remote.accept_new_host_keys is False
    assert fleet.remote.known_hosts == "~/.ssh/known_hosts"
    assert fleet.ssh_hosts("proxy-01") == (SshHost("proxy-01", "127.0.0.1", 22),)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("remote: {converge: {grid: puppet}}", "fleet.yaml:2: remote.converge names a group that"),
        ("remote: {groups: {grid: []}}", "fleet.yaml:2: remote.groups must list at least one host"),
        (
            "remote: {accept_new_host_keys: 'yes'}",
            "fleet.yaml:2: remote.accept_new_host_keys must be true or false",
        ),
    ],
)
def test_a_bad_remote_section_is_one_line_naming_the_setting(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config.parse(f"proxies: [{{name: proxy-01}}]\n{section}\n", "fleet.yaml")
    assert str(raised.value).startswith(message), str(raised.value)


def test_a_group_converges_by_command_or_by_pushing_the_data_plane() -> None:
    text = FLEET.replace(
        "    webgrid: run-puppet-agent\n",
        "    webgrid: run-puppet-agent\n    proxies: {push: dataplane, root: '/srv/{proxy}'}\n",
    )
    converge = config.parse(text, "fleet.yaml").remote.converge
    assert converge["webgrid"] == "run-puppet-agent"
    push = converge["proxies"]
    assert not isinstance(push, str) and push.root == "/srv/{proxy}"
    assert push.check == "nginx -t -q -c {nginx_conf}"


def test_the_every_proxy_member_follows_the_fleet_including_deployed_proxies(tmp_path: Path) -> None:
    deployed = tmp_path / "proxies.d"
    deployed.mkdir()
    (deployed / "proxy-03.yaml").write_text("name: proxy-03\naddress: 172.16.0.12\n")
    text = FLEET.replace("    proxies: [proxy-01, proxy-02]\n", "    proxies: ['@proxies']\n")
    fleet = config.parse(text + f"proxies_dir: {deployed}\n", "fleet.yaml")
    assert [host.name for host in fleet.ssh_hosts("proxies")] == ["proxy-01", "proxy-02", "proxy-03"]
    assert fleet.proxy("proxy-03").redis == "redis://172.16.0.12:6379/0"
    (deployed / "proxy-03.yaml").unlink()  # `proxy remove`
    fleet = config.parse(text + f"proxies_dir: {deployed}\n", "fleet.yaml")
    assert [host.name for host in fleet.ssh_hosts("proxies")] == ["proxy-01", "proxy-02"]


def test_a_deployed_proxy_entry_that_is_not_a_mapping_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "proxy-03.yaml").write_text("- just a list\n")
    with pytest.raises(ConfigError, match=r"proxy-03.yaml:1: expected a mapping"):
        config.parse(f"proxies: [{{name: proxy-01}}]\nproxies_dir: {tmp_path}\n", "fleet.yaml")
