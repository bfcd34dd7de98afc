"""kube2proxy still routes Services under its unit's sandbox (what of it tests/support/sandbox.py
can apply without systemd: no capability, no new privileges, no memory both writable and executable)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import RedisServer, wait_until
from tests.support.kube2proxy import start_daemon, write_config
from tests.support.sandbox import bounding_set, confined
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.lab.kubeapi import FakeKubeApi, service


def test_a_labelled_service_is_routed_with_kube2proxy_in_its_sandbox(
    tmp_path: Path, redis_server: RedisServer, store: RouteStore
) -> None:
    api = FakeKubeApi(bookmark_interval=0.5).start()
    try:
        api.put(service("tool-alpha", "alpha", "127.96.0.11"))
        config = write_config(tmp_path, redis_server.url, api.write_kubeconfig(tmp_path / "kubeconfig"))
        daemon = start_daemon(config, tmp_path / "kube2proxy.log", wrapper=confined("kube2proxy.service"))
        try:
            wait_until(lambda: store.routes("alpha"), "alpha's route")
            assert "NoNewPrivs:\t1" in Path(f"/proc/{daemon.popen.pid}/status").read_text()
            assert bounding_set(daemon.popen.pid) == 0 or os.geteuid() != 0
        finally:
            daemon.kill()
    finally:
        api.stop()
    assert store.routes("alpha") == {".*": "http://127.96.0.11:8000"}
