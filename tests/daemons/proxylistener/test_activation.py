"""Socket activation: a socket is taken only when systemd passed it to this very process, and only one."""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path

import pytest

from toolforgectl.adapters.render import render_units
from toolforgectl.core.config import Fleet, Proxy, ProxyListener
from toolforgectl.core.errors import ConfigError
from toolforgectl.daemons.proxylistener import activation


def test_sockets_passed_to_another_process_are_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    # LISTEN_PID names the process systemd started; a child that inherited the variables is not it.
    monkeypatch.setenv("LISTEN_PID", str(os.getppid()))
    monkeypatch.setenv("LISTEN_FDS", "1")

    assert activation.inherited() is None


def test_more_than_one_socket_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "2")

    with pytest.raises(ConfigError, match="systemd passed 2 sockets"):
        activation.inherited()
    assert "LISTEN_FDS" not in os.environ, "not passed on to anything this process starts"


def test_the_rendered_socket_unit_hands_the_default_port_to_the_service() -> None:
    units = render_units(Fleet(proxies=(Proxy(name="proxy-01"),)), Path(sys.prefix) / "bin")
    socket_unit = configparser.ConfigParser(strict=False, interpolation=None)
    socket_unit.read_string(units["systemd/system/proxylistener.socket"])
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read_string(units["systemd/system/proxylistener.service"])

    assert socket_unit["Socket"]["ListenStream"] == f"{ProxyListener.listen}:{ProxyListener.port}"
    assert "proxylistener.socket" in service["Unit"]["Requires"].split()
