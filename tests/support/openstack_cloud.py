"""What only a test does to the slow tier's OpenStack control plane (the harness itself is
toolforgectl/lab/openstack.py, which the lab runs too: `lab up --cloud openstack`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from openstack.network.v2._proxy import Proxy as NetworkProxy


def before_the_put(monkeypatch: pytest.MonkeyPatch, action: Callable[[NetworkProxy], None]) -> list[int]:
    """Run `action` once, just before the adapter's next floating IP PUT reaches Neutron (after
    its own read): a change only Neutron itself can catch. Returns the list it appends to per call."""
    original = NetworkProxy.update_ip
    calls: list[int] = []
    acting: list[bool] = []  # the action's own calls (another operator's update_ip) are not counted

    def update_ip(self: NetworkProxy, *args: Any, **kwargs: Any) -> Any:
        if acting:
            return original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            acting.append(True)
            try:
                action(self)
            finally:
                acting.clear()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(NetworkProxy, "update_ip", update_ip)
    return calls
