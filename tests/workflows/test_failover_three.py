"""`toolforgectl failover --to` on a three-proxy lab: the third proxy's Redis follows the new primary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.support.lab import cli, proxy_lab
from tests.workflows.test_failover import active, resolved, store
from tests.workflows.test_failover_dns import restart_redis
from toolforgectl.core import validate
from toolforgectl.core.models import Attribution
from toolforgectl.workflows.proxies import redis_address


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with proxy_lab(tmp_path_factory.mktemp("failover-three") / "lab", 3) as state:
        yield state


def replicates_from(lab: dict[str, Any], proxy: str, primary: str) -> bool:
    state = store(lab, proxy).replication()
    wanted = redis_address(lab["proxies"][primary]["redis"])
    return not state.is_primary and state.primary == wanted and state.link_up


def test_a_failover_repoints_the_third_proxys_redis_to_the_new_primary(lab: dict[str, Any]) -> None:
    assert active(lab) == "proxy-01" and replicates_from(lab, "proxy-03", "proxy-01")

    moved = cli(lab, "failover", "--to", "proxy-02", "--yes", "--reason", "three proxies")

    assert moved.returncode == 0, moved.stderr
    assert "repoint-other-replicas" in moved.stderr and "proxy-03's Redis" in moved.stdout
    assert active(lab) == "proxy-02"
    assert replicates_from(lab, "proxy-03", "proxy-02")
    assert resolved(lab) == (lab["proxies"]["proxy-02"]["address"],)
    by = Attribution(actor="test@lab", reason="after the failover")
    store(lab, "proxy-02").set_route("late", ".*", validate.backend("http://172.16.5.5:4321"), by)
    wait_until(lambda: store(lab, "proxy-03").routes("late"), "a new route to reach proxy-03's Redis")

    restart_redis(lab, "proxy-03")  # its redis.conf was rendered naming proxy-01

    wait_until(lambda: replicates_from(lab, "proxy-03", "proxy-02"), "proxy-03's Redis to follow proxy-02")
    back = cli(lab, "failover", "--to", "proxy-01", "--yes", "--reason", "three proxies, back")
    assert back.returncode == 0, back.stderr
    assert replicates_from(lab, "proxy-03", "proxy-01")
