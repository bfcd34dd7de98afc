"""The one active-proxy policy: what /etc/active-proxy means in each state it can be in."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolforgectl.core import activeproxy
from toolforgectl.core.errors import ActiveProxyError


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "active-proxy"


@pytest.mark.parametrize(
    ("content", "host"),
    [
        (b"tools-proxy-05", "tools-proxy-05"),  # as puppet writes it: no newline
        (b"tools-proxy-05.tools.eqiad1.wikimedia.cloud\n", "tools-proxy-05.tools.eqiad1.wikimedia.cloud"),
        (b"  proxy-02 \r\n", "proxy-02"),
        (b"172.16.0.10", "172.16.0.10"),
        (b"::1\n", "::1"),
    ],
)
def test_a_file_naming_one_host_names_the_active_proxy(path: Path, content: bytes, host: str) -> None:
    path.write_bytes(content)

    assert activeproxy.read(path, fallback="from-config") == activeproxy.ActiveProxy(host, str(path))


@pytest.mark.parametrize("content", [b"", b"\n", b"  \t\n"])
def test_an_empty_file_is_the_kill_switch_even_with_a_config(path: Path, content: bytes) -> None:
    path.write_bytes(content)

    found = activeproxy.read(path, fallback="proxy-01")

    assert found.switched_off and found.host is None


def test_a_missing_file_falls_back_to_the_fleet_config(path: Path) -> None:
    assert activeproxy.read(path, fallback="proxy-01").host == "proxy-01"
    assert activeproxy.read(path, fallback=lambda: "proxy-02").host == "proxy-02"


def test_the_config_is_consulted_only_when_the_file_is_missing(path: Path) -> None:
    path.write_text("proxy-03")

    def config() -> str:
        raise AssertionError("the config was read although the file names a proxy")

    assert activeproxy.read(path, fallback=config).host == "proxy-03"


def test_a_missing_file_without_a_config_is_an_error(path: Path) -> None:
    with pytest.raises(ActiveProxyError, match="does not exist"):
        activeproxy.read(path)
    with pytest.raises(ActiveProxyError, match="does not exist"):
        activeproxy.read(path, fallback=lambda: None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfeproxy", "not UTF-8 text"),
        (b"proxy-01\nproxy-02\n", "more than one line"),
        (b"proxy 01", "'proxy 01' is not a host name"),
        (b"http://proxy-01:8282/", "is not a host name"),
        (b"-proxy", "is not a host name"),
        (b"p" * 300, "longer than a host name"),
        (b"\x00" * 5, "is not a host name"),
    ],
)
def test_a_garbled_file_is_an_error_and_never_falls_back(path: Path, content: bytes, message: str) -> None:
    path.write_bytes(content)

    with pytest.raises(ActiveProxyError, match=message):
        activeproxy.read(path, fallback="proxy-01")


def test_an_unreadable_file_is_an_error_and_never_falls_back(path: Path) -> None:
    path.mkdir()  # unreadable as a file even for root

    with pytest.raises(ActiveProxyError, match="cannot read"):
        activeproxy.read(path, fallback="proxy-01")


@pytest.mark.parametrize(
    ("active", "mine"),
    [
        ("proxy-01", True),
        ("proxy-01.tools.example.org", True),
        ("172.16.0.10", True),
        ("proxy-02", False),
        ("proxy-010", False),
        ("172.16.0.1", False),
    ],
)
def test_a_proxy_knows_itself_by_name_address_or_first_label(active: str, mine: bool) -> None:
    assert activeproxy.names_proxy(active, "proxy-01", "172.16.0.10") is mine
