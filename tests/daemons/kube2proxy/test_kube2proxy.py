"""kube2proxy as a process against a fake Kubernetes API (real client library) and a real Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RedisServer, run_cli, wait_until
from tests.support.kube2proxy import launcher, start_daemon, write_config
from toolforgectl.adapters.processes import start_redis
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import validate
from toolforgectl.core.models import Attribution
from toolforgectl.lab.kubeapi import FakeKubeApi, service


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    fake = FakeKubeApi(bookmark_interval=0.5).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def launch(tmp_path: Path, api: FakeKubeApi, redis_server: RedisServer) -> Iterator[Any]:
    """Start kube2proxy with extra kube2proxy settings; every daemon started is stopped after."""
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    with launcher(tmp_path, redis_server.url, kubeconfig) as start:
        yield start


def test_initial_sync_routes_every_labelled_service(launch: Any, api: FakeKubeApi, store: RouteStore) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    api.put(service("tool-beta", "beta", "127.96.0.12", ports=[("metrics", 9100), ("http", 8000)]))
    labels = {"tools.wmflabs.org/webservice": "true", "toollabs-proxy-path": "api"}
    api.put(service("tool-gamma", "gamma", "127.96.0.13", labels=labels))
    api.put(service("tool-delta", "delta", "127.96.0.14", labels={"app": "other"}))
    launch()
    wait_until(lambda: store.routes("gamma"), "gamma's route")
    assert store.routes("alpha") == {".*": "http://127.96.0.11:8000"}
    assert store.routes("beta") == {".*": "http://127.96.0.12:8000"}
    assert store.routes("gamma") == {"/api.*": "http://127.96.0.13:8000"}
    assert store.routes("delta") == {}, "a Service without the webservice label gets no route"
    assert store.k8s_members() == {"tool-alpha/alpha/.*", "tool-beta/beta/.*", "tool-gamma/gamma/api.*"}


def test_a_list_longer_than_one_page_is_read_to_the_end(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    for i in range(1200):
        api.put(service(f"tool-p{i}", f"p{i}", f"127.96.{i // 250}.{i % 250 + 1}"))
    launch()
    wait_until(lambda: len(store.k8s_members()) == 1200, "every page routed")
    assert [bool(q.get("continue")) for q in api.lists()] == [False, True, True], "three pages of 500"
    assert store.routes("p1199") == {".*": "http://127.96.4.200:8000"}


def test_cli_shows_the_route_kube2proxy_wrote(
    launch: Any, api: FakeKubeApi, store: RouteStore, redis_server: RedisServer
) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    launch()
    wait_until(lambda: store.routes("alpha"), "alpha's route")
    shown = run_cli("--redis", redis_server.url, "routes", "show", "alpha", "--json")
    assert shown.code == 0, shown.stderr
    rows = json.loads(shown.stdout)["data"]["routes"]
    assert [(r["route"], r["backend"]) for r in rows] == [(".*", "http://127.96.0.11:8000")]


def test_added_modified_and_deleted_services_follow_the_watch(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    daemon = launch()
    wait_until(daemon.listed, "the first list")
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    wait_until(lambda: store.routes("alpha") == {".*": "http://127.96.0.11:8000"}, "ADDED applied")
    api.put(service("tool-alpha", "alpha", "127.96.0.11", ports=[("http", 8080)]))
    wait_until(lambda: store.routes("alpha") == {".*": "http://127.96.0.11:8080"}, "port change applied")
    api.put(service("tool-alpha", "alpha", "127.96.0.99", ports=[("http", 8080)]))
    wait_until(lambda: store.routes("alpha") == {".*": "http://127.96.0.99:8080"}, "clusterIP change applied")
    labels = {"tools.wmflabs.org/webservice": "true", "toollabs-proxy-path": "v2"}
    api.put(service("tool-alpha", "alpha", "127.96.0.99", ports=[("http", 8080)], labels=labels))
    wait_until(lambda: store.routes("alpha") == {"/v2.*": "http://127.96.0.99:8080"}, "path change applied")
    assert store.k8s_members() == {"tool-alpha/alpha/v2.*"}, "the old route's member went with it"
    api.delete("tool-alpha", "alpha")
    wait_until(lambda: store.routes("alpha") == {}, "DELETED applied")
    assert store.k8s_members() == set()
    assert daemon.metric("kube2proxy_relists_total", reason="start") == 1, "events, not relists, did this"


def test_a_burst_of_changes_ends_in_the_last_state_of_each_service(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    daemon = launch()
    wait_until(daemon.listed, "the first list")
    with api.lock:  # the watch sends nothing until all of these are in: they arrive together
        for i in range(50):
            api.put(service(f"tool-s{i}", f"s{i}", "127.96.1.1"))
            api.put(service(f"tool-s{i}", f"s{i}", f"127.96.2.{i + 1}"))
        api.delete("tool-s0", "s0")
    wait_until(lambda: len(store.k8s_members()) == 49, "the burst applied")
    assert store.routes("s0") == {}
    assert all(store.routes(f"s{i}") == {".*": f"http://127.96.2.{i + 1}:8000"} for i in range(1, 50))
    assert daemon.metric("kube2proxy_events_total", type="MODIFIED") == 50, "every event was read"


def test_deletions_while_the_daemon_was_down_are_cleaned_up_on_start(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    api.put(service("tool-beta", "beta", "127.96.0.12"))
    store.set_route("grid", ".*", validate.backend("http://127.0.0.1:41000"), Attribution("proxylistener"))
    daemon = launch()
    wait_until(lambda: store.routes("beta"), "the first sync")
    assert daemon.stop() == 0
    assert "stopped" in daemon.log_text()
    api.delete("tool-alpha", "alpha")
    api.put(service("tool-gamma", "gamma", "127.96.0.13"))
    launch()
    wait_until(lambda: store.routes("gamma"), "gamma added while down")
    wait_until(lambda: not store.routes("alpha"), "alpha's stale route removed")
    assert store.routes("beta") == {".*": "http://127.96.0.12:8000"}
    assert store.routes("grid") == {".*": "http://127.0.0.1:41000"}, "routes kube2proxy does not own stay"
    assert store.k8s_members() == {"tool-beta/beta/.*", "tool-gamma/gamma/.*"}


def test_410_mid_watch_relists_and_removes_a_deletion_made_in_the_gap(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    api.put(service("tool-beta", "beta", "127.96.0.12"))
    daemon = launch()
    wait_until(lambda: store.routes("beta"), "the first sync")
    wait_until(api.watches, "the watch")
    with api.gap():  # no open watch sees these; then they all get ERROR 410 Gone
        api.delete("tool-alpha", "alpha")
        api.put(service("tool-beta", "beta", "127.96.0.22"))
    wait_until(lambda: not store.routes("alpha"), "the gap deletion removed")
    wait_until(lambda: store.routes("beta") == {".*": "http://127.96.0.22:8000"}, "the gap change applied")
    assert daemon.metric("kube2proxy_relists_total", reason="gone") == 1
    api.put(service("tool-gamma", "gamma", "127.96.0.13"))
    wait_until(lambda: store.routes("gamma"), "watching again after the relist")


def test_a_410_status_on_the_watch_request_also_relists(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    api.fail_next(1, status=410, watch_only=True)
    daemon = launch()
    wait_until(lambda: daemon.metric("kube2proxy_relists_total", reason="gone") == 1, "a relist on 410")
    api.put(service("tool-beta", "beta", "127.96.0.12"))
    wait_until(lambda: store.routes("beta"), "watching after the relist")
    assert len(api.lists()) == 2


def test_a_cut_stream_recovers_without_rewriting_unchanged_routes(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    for i in range(3):
        api.put(service(f"tool-t{i}", f"t{i}", f"127.96.0.{20 + i}"))
    daemon = launch()

    def writes() -> float:  # counted just after a write reaches Redis: wait for it, not only the route
        return daemon.metric("kube2proxy_routes_written_total", action="set")

    wait_until(lambda: writes() == 3, "the first sync's three writes")
    wait_until(api.watches, "the watch")
    audit = {f"t{i}": len(store.audit(f"t{i}")) for i in range(3)}
    api.cut_watches()
    wait_until(lambda: daemon.metric("kube2proxy_relists_total", reason="stream_broken") == 1, "a relist")
    api.put(service("tool-t9", "t9", "127.96.0.29"))
    wait_until(lambda: store.routes("t9") and writes() >= 4, "watching again after the cut")
    assert writes() == 4, "only t9 was written"
    assert {f"t{i}": len(store.audit(f"t{i}")) for i in range(3)} == audit, "no duplicate audit entries"
    assert "broke off" in daemon.log_text()


def test_a_watch_that_times_out_resumes_from_the_last_version_without_relisting(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    daemon = launch(watch_timeout=1)
    wait_until(daemon.listed, "the first list")
    version = api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    wait_until(lambda: store.routes("alpha"), "alpha's route")
    wait_until(lambda: len(api.watches()) >= 3, "two watch restarts")
    resumed_from = [int(w["resourceVersion"]) for w in api.watches()]
    assert resumed_from == sorted(resumed_from), "never goes back in time"
    assert resumed_from[-1] >= version, "resumes after the event it already applied"
    assert all(w["timeoutSeconds"] == "1" and w["allowWatchBookmarks"] == "true" for w in api.watches())
    assert len(api.lists()) == 1, "a clean end of the stream is no reason to relist"
    assert daemon.metric("kube2proxy_events_total", type="ADDED") == 1


def test_hostile_or_broken_services_are_ignored_with_a_log_line(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    api.put(service("tool-victim", "victim", "127.96.0.50"))
    api.put(service("tool-evil", "victim", "127.96.0.66"))  # claims another tool's prefix
    api.put(service("tool-noport", "noport", "127.96.0.51", ports=[("a", 1), ("b", 2)]))
    api.put(service("tool-badip", "badip", "999.1.2.3"))
    api.put(service("tool-headless", "headless", "None"))
    api.put(service("kube-system", "dns", "127.96.0.53"))
    api.put(service("tool-single", "single", "127.96.0.54", ports=[("web", 8000)]))
    daemon = launch()
    wait_until(lambda: store.routes("single"), "the first sync")
    assert store.routes("single") == {".*": "http://127.96.0.54:8000"}, "the only port is used"
    assert store.routes("victim") == {".*": "http://127.96.0.50:8000"}, "the victim keeps its route"
    for tool in ("evil", "noport", "badip", "headless", "dns"):
        assert store.routes(tool) == {}
    log = daemon.log_text()
    assert "ignoring Service tool-evil/victim: its name is not its tool's ('evil')" in log
    assert "ignoring Service tool-noport/noport: no port named 'http' among 2 ports" in log
    assert "ignoring Service tool-badip/badip:" in log
    assert "ignoring Service tool-headless/headless: it has no clusterIP" in log
    assert "ignoring Service kube-system/dns: namespace does not match 'tool-{tool}'" in log
    api.put(service("tool-evil", "victim", "127.96.0.67"))  # and through the watch too
    api.put(service("tool-marker", "marker", "127.96.0.55"))
    wait_until(lambda: store.routes("marker"), "later events applied")
    assert store.routes("victim") == {".*": "http://127.96.0.50:8000"}


def test_a_standby_proxy_writes_nothing_until_it_becomes_active(
    launch: Any, api: FakeKubeApi, store: RouteStore, tmp_path: Path
) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    daemon = launch(active="proxy-02")
    wait_until(lambda: "standby (proxy-02 is active)" in daemon.log_text(), "the daemon to idle")
    daemon.wait_for_checks(2)  # a wrongly active daemon would have listed in between
    assert store.routes("alpha") == {} and api.requests == [], "a standby neither lists nor writes"
    (tmp_path / "active-proxy").write_text("proxy-01.example.org\n")  # failover, no restart
    wait_until(lambda: store.routes("alpha"), "the new active proxy to sync")
    (tmp_path / "active-proxy").write_text("proxy-02\n")
    wait_until(lambda: daemon.metric("kube2proxy_active") == 0, "the daemon to notice it is standby")
    api.put(service("tool-beta", "beta", "127.96.0.12"))
    daemon.wait_for_checks(2)  # the event reached the watch, or the daemon had let go of it
    assert store.routes("beta") == {}, "a proxy that went standby writes nothing"
    assert daemon.stop() == 0, "an idle daemon stops cleanly too"
    standby = [line for line in daemon.log_lines() if "standby" in line["message"]]
    assert standby[0]["log.logger"] == "kube2proxy" and standby[0]["log.level"] == "info"


def test_without_a_section_file_each_proxy_reads_its_own_active_proxy_file(
    launch: Any, api: FakeKubeApi, store: RouteStore, tmp_path: Path
) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    (tmp_path / "active-proxy").write_text("proxy-01")  # the section's file, unused here
    (tmp_path / "proxy-01.active-proxy").write_text("proxy-02")  # proxies[proxy-01].active_proxy_file
    daemon = launch(active="proxy-01", active_proxy_file=None)
    wait_until(lambda: "standby (proxy-02 is active)" in daemon.log_text(), "the daemon to idle")
    daemon.wait_for_checks(2)
    assert store.routes("alpha") == {}, "its own proxy's file says proxy-02 is active"
    (tmp_path / "proxy-01.active-proxy").write_text("proxy-01")
    wait_until(lambda: store.routes("alpha"), "the sync once its own file names it")


@pytest.mark.parametrize(
    ("content", "logged"),
    [
        (b"", "standby (no proxy is active: "),
        (b"\xffproxy-01", "cannot tell which proxy is active, so acting as standby: "),
    ],
    ids=["empty: the kill switch", "garbled"],
)
def test_an_empty_or_garbled_active_proxy_file_stands_by_instead_of_trusting_the_config(
    launch: Any, api: FakeKubeApi, store: RouteStore, tmp_path: Path, content: bytes, logged: str
) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    (tmp_path / "active-proxy").write_bytes(content)
    daemon = launch(active="proxy-01")  # the fleet config names this proxy; only the file says no
    wait_until(lambda: logged in daemon.log_text(), "the daemon to say why it stands by")
    daemon.wait_for_checks(2)
    assert store.routes("alpha") == {} and api.requests == [], "a standby neither lists nor writes"
    (tmp_path / "active-proxy").write_text("proxy-01")
    wait_until(lambda: store.routes("alpha"), "the sync once the file names this proxy")


def test_api_errors_are_retried_with_backoff_until_the_sync_succeeds(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    api.fail_next(3)
    daemon = launch()
    wait_until(lambda: store.routes("alpha"), "the sync after the errors")
    assert daemon.metric("kube2proxy_api_errors_total") == 3
    assert daemon.log_text().count("the Kubernetes API answered 500") == 3
    assert daemon.popen.poll() is None, "errors are retried, not fatal"


def test_the_periodic_resync_repairs_a_route_changed_behind_its_back(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    daemon = launch(watch_timeout=1, resync_interval=1)
    wait_until(lambda: store.routes("alpha"), "the first sync")
    store.delete_route("alpha", ".*", Attribution("someone"))  # drift no watch event will report
    wait_until(lambda: store.routes("alpha") == {".*": "http://127.96.0.11:8000"}, "the resync to repair it")
    assert daemon.metric("kube2proxy_relists_total", reason="resync") >= 1


def test_a_redis_outage_is_retried_and_the_missed_change_written_after(
    launch: Any, api: FakeKubeApi, store: RouteStore, redis_server: RedisServer
) -> None:
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    daemon = launch()
    wait_until(lambda: store.routes("alpha"), "the first sync")
    redis_server.process.stop()
    api.put(service("tool-alpha", "alpha", "127.96.0.12"))
    wait_until(lambda: daemon.metric("kube2proxy_store_errors_total") >= 1, "the failed write")
    old = redis_server.process
    restarted = start_redis(redis_server.directory, old.host, old.port)
    try:  # the fixture only stops the Redis it started
        wait_until(lambda: store.routes("alpha") == {".*": "http://127.96.0.12:8000"}, "the change, after")
        assert daemon.popen.poll() is None
    finally:
        restarted.stop()


def test_missing_credentials_are_one_error_line_and_exit_code_3(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = write_config(tmp_path, redis_server.url, tmp_path / "no-such-kubeconfig")
    daemon = start_daemon(config, tmp_path / "kube2proxy.log")
    assert daemon.popen.wait(timeout=30) == 3
    log = daemon.log_text()
    assert "kube2proxy: error: cannot load Kubernetes credentials from" in log and "Traceback" not in log


def test_registry_members_naming_no_tool_service_are_forgotten_not_deleted(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    legacy = ("legacy/web/.*", "web", ".*", validate.backend("http://127.0.0.1:5000"))  # e.g. the original's
    store.set_k8s_routes([legacy], Attribution("kube2proxy"))
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    daemon = launch()
    wait_until(lambda: store.k8s_members() == {"tool-alpha/alpha/.*"}, "the registry cleaned")
    assert store.routes("web") == {".*": "http://127.0.0.1:5000"}, "not ours to delete"
    assert "forgetting registry member 'legacy/web/.*'" in daemon.log_text()


def test_a_route_past_the_per_tool_cap_is_logged_not_written(
    launch: Any, api: FakeKubeApi, store: RouteStore
) -> None:
    backend = validate.backend("http://127.96.0.99:8000")
    for number in range(validate.MAX_ROUTES_PER_TOOL):  # another writer filled the tool up
        store.set_route("alpha", f"^/{number}/", backend, Attribution("test"))
    api.put(service("tool-alpha", "alpha", "127.96.0.11"))
    api.put(service("tool-beta", "beta", "127.96.0.12"))
    daemon = launch()
    wait_until(lambda: store.routes("beta"), "the first sync")
    said = f"alpha .* not written: the tool has the most routes allowed ({validate.MAX_ROUTES_PER_TOOL})"
    wait_until(lambda: said in daemon.log_text(), "the refusal in the log")
    assert ".*" not in store.routes("alpha") and "tool-alpha/alpha/.*" not in store.k8s_members()
