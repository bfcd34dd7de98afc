"""The fleet's `remote:` section: host groups resolve to where each host's sshd answers."""

from __future__ import annotations

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
