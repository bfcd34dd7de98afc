"""webservicemonitor as a process against a lab proxy: what it restarts, what it leaves, and its throttle."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import urllib.request

import redis

from tests.conftest import run_cli, wait_until
from tests.daemons.webservice_site import sample
from tests.daemons.webservicemonitor.conftest import Fleet, events
from toolforgectl.adapters.localjobs import LocalJobs
from toolforgectl.adapters.processes import free_port


def _start_demo(lab: Fleet, tool: str = "demo") -> str:
    lab.add_tool(tool)
    done = lab.webservice(tool, "generic", "start", "--", *sample(tool))
    assert done.returncode == 0, done.stderr
    return wait_until(lambda: lab.store.routes(tool).get(".*"), f"{tool}'s route")


def _answers(lab: Fleet, tool: str) -> bool:
    reply = lab.proxy.get(f"/{tool}/")
    return reply.status == 200 and reply.json()["tool"] == tool


def _listed(lab: Fleet) -> set[str]:
    with urllib.request.urlopen(lab.proxy.info["internal"] + "/list", timeout=5) as page:
        return set(json.loads(page.read()))


def test_a_job_that_died_is_restarted_and_its_route_comes_back(lab_fleet: Fleet) -> None:
    old = _start_demo(lab_fleet)
    wait_until(lambda: _answers(lab_fleet, "demo"), "demo through the proxy")
    job = LocalJobs(lab_fleet.tmp / "spool").jobs()[0]
    os.killpg(int(job.number), signal.SIGKILL)  # a node crash: nobody unregisters
    wait_until(lambda: not LocalJobs(lab_fleet.tmp / "spool").jobs(), "the job to be gone")
    assert lab_fleet.store.routes("demo").get(".*") == old  # a stale route to a dead backend

    done = lab_fleet.monitor_once()

    assert done.returncode == 0, done.stderr
    restarted = [e for e in events(done.stderr) if e["message"] == "restarted"]
    assert [(e["tool"], e["reason"]) for e in restarted] == [("demo", "no job")]
    wait_until(lambda: lab_fleet.store.routes("demo").get(".*") not in (None, old), "a new route")
    wait_until(lambda: _answers(lab_fleet, "demo"), "demo through the proxy again")
    assert any("no job; restarting the webservice" in line for line in lab_fleet.service_log("demo"))


def test_a_route_deleted_from_redis_gets_the_tool_restarted(lab_fleet: Fleet) -> None:
    _start_demo(lab_fleet)
    redis.Redis.from_url(lab_fleet.proxy.info["redis"]).delete("prefix:demo")  # as redis-cli would
    wait_until(lambda: "demo" not in _listed(lab_fleet), "demo to leave /list")

    done = lab_fleet.monitor_once()

    assert done.returncode == 0, done.stderr
    reasons = [e["reason"] for e in events(done.stderr) if e["message"] == "restarted"]
    assert reasons == ["no route in the proxy's /list"]
    wait_until(lambda: "demo" in _listed(lab_fleet), "demo back in /list")
    wait_until(lambda: _answers(lab_fleet, "demo"), "demo through the proxy again")


def test_a_stopped_webservice_is_left_stopped(lab_fleet: Fleet) -> None:
    _start_demo(lab_fleet)
    assert lab_fleet.webservice("demo", "stop").returncode == 0

    done = lab_fleet.monitor_once()

    assert done.returncode == 0, done.stderr
    assert not [e for e in events(done.stderr) if e["message"] == "restarted"]
    assert lab_fleet.store.routes("demo") == {}
    assert LocalJobs(lab_fleet.tmp / "spool").jobs() == []


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        return str(page.read().decode())


def _metric(text: str, name: str) -> float:
    found = [
        line.split()[-1]
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    ]
    return sum(float(value) for value in found)


def test_a_flapping_tool_is_throttled_after_3_restarts_even_across_a_monitor_restart(
    lab_fleet: Fleet,
) -> None:
    lab_fleet.add_tool("flappy")
    # A server that exits at once: every restart "works", and the job is gone again by the next pass.
    flaps = ("generic", "start", "--", sys.executable, "-c", "import sys; sys.exit(3)")
    assert lab_fleet.webservice("flappy", *flaps).returncode == 0
    log, port = lab_fleet.tmp / "monitor.log", free_port()
    monitor = lab_fleet.monitor(log, port)
    try:

        def restarts() -> int:
            return sum("restarting the webservice" in line for line in lab_fleet.service_log("flappy"))

        def throttles() -> int:
            return sum(
                "Throttled for 3 restarts in last 3600 seconds" in line
                for line in lab_fleet.service_log("flappy")
            )

        wait_until(lambda: throttles() >= 1, "the throttle to start", timeout=90)
        assert restarts() == 3
        assert _metric(_scrape(port), "webservicemonitor_throttled_total") >= 1
        assert _metric(_scrape(port), "webservicemonitor_restarts_total") == 3
        os.kill(monitor.pid, signal.SIGKILL)  # a crash: the history must be on disk already
        wait_until(lambda: not monitor.alive(), "the killed monitor to be gone")
        before = throttles()
        monitor = lab_fleet.monitor(log, free_port())

        wait_until(lambda: throttles() > before, "the restarted monitor to pass over flappy", timeout=60)

        assert restarts() == 3
    finally:
        monitor.stop()


def test_bad_manifests_are_skipped_with_a_log_line_and_the_others_still_handled(lab_fleet: Fleet) -> None:
    lab_fleet.add_tool("good")
    good = lab_fleet.home("good") / "service.manifest"
    good.write_text("version: 4\nweb: generic\nbackend: local\nweb::extra_args: [sleep, '60']\n")
    lab_fleet.add_tool("badyaml")
    (lab_fleet.home("badyaml") / "service.manifest").write_text("web: [unclosed\n")
    lab_fleet.add_tool("thief")
    (lab_fleet.home("thief") / "service.manifest").symlink_to(good)
    lab_fleet.add_tool("huge")
    with (lab_fleet.home("huge") / "service.manifest").open("wb") as file:
        file.truncate(100 * 1024 * 1024)
    lab_fleet.add_tool("planted")
    planted = lab_fleet.home("planted") / "service.manifest"
    planted.write_text("web: generic\n")
    os.chown(planted, 65534, 65534)  # someone else's file in the tool's home

    done = lab_fleet.monitor_once("--dry-run")

    assert done.returncode == 0, done.stderr
    lines = events(done.stderr)
    skipped = {e["tool"]: e["reason"] for e in lines if e["message"] == "manifest skipped"}
    assert set(skipped) == {"badyaml", "thief", "huge", "planted"}
    assert "not valid YAML" in skipped["badyaml"]
    assert "is a symlink" in skipped["thief"]
    assert "bytes, more than the 65536 a manifest may have" in skipped["huge"]
    assert "owned by uid 65534, not by the tool" in skipped["planted"]
    assert [e["tool"] for e in lines if e["message"] == "would restart"] == ["good"]
    assert LocalJobs(lab_fleet.tmp / "spool").jobs() == []  # a dry run starts nothing
    status = run_cli("--config", str(lab_fleet.config), "webservices", "status", "--json")
    actions = {t["tool"]: t["action"] for t in json.loads(status.stdout)["data"]["tools"]}
    assert actions == {
        "good": "restart",
        "badyaml": "skip",
        "thief": "skip",
        "huge": "skip",
        "planted": "skip",
    }


def test_an_unanswering_list_times_out_and_causes_no_restart_storm(lab_fleet: Fleet) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    config = lab_fleet.config.read_text().replace(
        "list_timeout: 2.0", f"list_timeout: 1.0\n  list_url: http://127.0.0.1:{silent.getsockname()[1]}/list"
    )
    lab_fleet.config.write_text(config)
    for tool in ("one", "two", "three"):
        _start_demo(lab_fleet, tool)
    jobs = {job.name: job.number for job in LocalJobs(lab_fleet.tmp / "spool").jobs()}
    lab_fleet.add_tool("dead")
    (lab_fleet.home("dead") / "service.manifest").write_text(
        "web: generic\nbackend: local\nweb::extra_args: [x]\n"
    )

    try:
        done = lab_fleet.monitor_once("--dry-run")
    finally:
        silent.close()

    assert done.returncode == 1  # the pass was not healthy: it could not see the routes
    lines = events(done.stderr)
    assert any(
        e["message"].startswith("proxy /list unavailable") and "timed out" in e["error"] for e in lines
    )
    assert [e["tool"] for e in lines if e["message"] == "would restart"] == ["dead"]
    assert {job.name: job.number for job in LocalJobs(lab_fleet.tmp / "spool").jobs()} == jobs
