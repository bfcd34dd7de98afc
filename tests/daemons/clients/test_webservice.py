"""`webservice` as a process: start, restart, stop and status through each backend.

local: for real (the server under webservice-runner registers with a real proxylistener);
gridengine: qsub, qstat and qdel are stubs on PATH that record their calls and print recorded XML;
kubernetes: against the fake API (lab/kubeapi.py) through the real client library.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import wait_until
from tests.daemons.regstack import Stack
from tests.daemons.webservice_site import get, make_site, sample
from toolforgectl.core import manifest, qstat
from toolforgectl.core.jobs import Job
from toolforgectl.lab.kubeapi import FakeKubeApi


def test_local_start_registers_the_route_and_stop_removes_it(stack: Stack, tmp_path: Path) -> None:
    site = make_site(tmp_path, stack.listener())
    site.add_tool("demo")
    redis = stack.client()

    started = site.webservice("demo", "generic", "start", "--", *sample("demo"))

    assert started.returncode == 0, started.stderr
    backend = wait_until(lambda: redis.hget("prefix:demo", ".*"), "demo's route")
    answer = wait_until(lambda: get(backend + "/demo/"), "demo's server to answer")  # it registers first
    assert json.loads(answer)["tool"] == "demo"
    status = site.status("demo")
    assert status["running"] is True and status["job"]["name"] == "generic-demo"
    assert status["manifest"]["backend"] == "local"

    again = site.webservice("demo", "start")
    assert again.returncode == 1 and "running already" in again.stderr

    stopped = site.webservice("demo", "stop")

    assert stopped.returncode == 0, stopped.stderr
    assert redis.exists("prefix:demo") == 0
    left = manifest.read(site.home("demo") / "service.manifest", owner=os.getuid())
    assert left is not None and left.web is None and left.data["version"] == manifest.VERSION
    assert site.status("demo")["running"] is False


def test_local_restart_uses_the_manifest_and_serves_again_on_a_new_job(stack: Stack, tmp_path: Path) -> None:
    site = make_site(tmp_path, stack.listener())
    site.add_tool("demo")
    redis = stack.client()
    assert site.webservice("demo", "generic", "start", "--", *sample("demo")).returncode == 0
    first = wait_until(lambda: site.status("demo")["job"], "the first job")

    restarted = site.webservice("demo", "restart")  # no type, no command: the manifest's

    assert restarted.returncode == 0, restarted.stderr
    second = wait_until(lambda: site.status("demo")["job"], "the second job")
    assert second["number"] != first["number"]
    backend = wait_until(lambda: redis.hget("prefix:demo", ".*"), "demo's route back")
    wait_until(lambda: get(backend + "/demo/"), "the restarted server to answer")
    site.webservice("demo", "stop")


def test_logs_shows_the_servers_output(stack: Stack, tmp_path: Path) -> None:
    site = make_site(tmp_path, stack.listener())
    site.add_tool("demo")
    site.webservice("demo", "generic", "start", "--", *sample("demo"))
    backend = wait_until(lambda: stack.client().hget("prefix:demo", ".*"), "demo's route")
    wait_until(lambda: get(backend + "/demo/from-the-test"), "demo's server to answer")

    found = wait_until(
        lambda: [
            line for line in site.webservice("demo", "logs").stdout.splitlines() if "from-the-test" in line
        ],
        "the request in the log",
    )

    assert '"uri": "/demo/from-the-test"' in found[0]
    last = site.webservice("demo", "logs", "--lines", "1")  # an option after the action, as people type it
    assert last.returncode == 0 and len(last.stdout.splitlines()) == 1
    site.webservice("demo", "stop")


def test_without_a_type_or_a_manifest_start_is_a_usage_error(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    site.add_tool("demo")

    done = site.webservice("demo", "start")

    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "webservice: error: give the webservice type (the manifest names none): webservice TYPE start"
    )


def test_an_unknown_tool_is_not_found(tmp_path: Path) -> None:
    done = make_site(tmp_path).webservice("nosuch", "status")

    assert done.returncode == 1 and "tool nosuch has no home" in done.stderr


# gridengine ---------------------------------------------------------------------------------

STUB = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> {calls}
case "$(basename "$0")" in
  qstat) cat {xml} ;;
  qsub) echo 'Your job 4242 ("'"$8"'") has been submitted' ;;
  qdel) printf '' ;;
esac
"""


@pytest.fixture
def grid(tmp_path: Path) -> Iterator[Path]:
    """qsub, qstat and qdel stubs first on PATH; qstat prints `grid/qstat.xml`, calls go to `grid/calls`."""
    directory = tmp_path / "grid"
    directory.mkdir()
    (directory / "qstat.xml").write_text(qstat.render([]))
    for name in ("qsub", "qstat", "qdel"):
        stub = directory / name
        stub.write_text(STUB.format(calls=directory / "calls", xml=directory / "qstat.xml"))
        stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    yield directory


def _calls(grid: Path) -> list[str]:
    path = grid / "calls"
    return path.read_text().splitlines() if path.exists() else []


def _path(grid: Path) -> dict[str, str]:
    return {"PATH": f"{grid}:{os.environ['PATH']}"}


def test_gridengine_start_submits_the_job_as_the_original_did(tmp_path: Path, grid: Path) -> None:
    site = make_site(tmp_path, gridengine_queue="webgrid-lighttpd", gridengine_memory="2G")
    home = site.add_tool("demo")

    done = site.webservice("demo", "--backend", "gridengine", "static", "start", env=_path(grid))

    assert done.returncode == 0, done.stderr
    qsub = next(call for call in _calls(grid) if call.startswith("qsub "))
    assert qsub.startswith(
        f"qsub -e {home}/error.log -o {home}/error.log -i /dev/null -q webgrid-lighttpd -l h_vmem=2G -b y"
        " -N static-demo "
    )
    assert f"--token-file {home}/.proxylistener-token" in qsub
    assert qsub.endswith(f"-- python3 -m http.server --directory {home}/public_html {{port}}")
    written = yaml.safe_load((home / "service.manifest").read_text())
    assert (written["web"], written["backend"]) == ("static", "gridengine")


def test_gridengine_status_reads_qstat_and_an_error_state_is_not_running(tmp_path: Path, grid: Path) -> None:
    site = make_site(tmp_path)
    site.add_tool("demo")
    site.webservice("demo", "--backend", "gridengine", "static", "start", env=_path(grid))
    (grid / "qstat.xml").write_text(qstat.render([Job("4242", "static-demo", "tools.demo", "Eqw")]))

    done = site.webservice("demo", "status", env=_path(grid))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "demo's webservice of type static on gridengine is NOT running"
    assert "qstat -u * -xml" in _calls(grid)


def test_gridengine_stop_deletes_the_tools_job_by_number(tmp_path: Path, grid: Path) -> None:
    site = make_site(tmp_path)
    site.add_tool("demo")
    site.webservice("demo", "--backend", "gridengine", "static", "start", env=_path(grid))
    jobs = [Job("4242", "static-demo", "tools.demo", "r"), Job("7", "static-other", "tools.other", "r")]
    (grid / "qstat.xml").write_text(qstat.render(jobs))

    done = site.webservice("demo", "stop", env=_path(grid))

    assert done.returncode == 0, done.stderr
    assert _calls(grid)[-1] == "qdel 4242"


def test_gridengine_restart_waits_for_the_old_job_to_go_before_submitting(tmp_path: Path, grid: Path) -> None:
    site = make_site(tmp_path, stop_timeout=5.0)
    site.add_tool("demo")
    site.webservice("demo", "--backend", "gridengine", "static", "start", env=_path(grid))
    (grid / "qstat.xml").write_text(qstat.render([Job("4242", "static-demo", "tools.demo", "dr")]))

    lingering = site.webservice("demo", "restart", env=_path(grid))

    assert lingering.returncode == 1 and "old job static-demo to go" in lingering.stderr
    assert [c for c in _calls(grid) if c.startswith("qsub")].__len__() == 1  # no second submission
    (grid / "qstat.xml").write_text(qstat.render([]))

    done = site.webservice("demo", "restart", env=_path(grid))

    assert done.returncode == 0, done.stderr
    assert len([c for c in _calls(grid) if c.startswith("qsub")]) == 2


def test_a_qstat_that_fails_is_one_error_line(tmp_path: Path, grid: Path) -> None:
    site = make_site(tmp_path)
    site.add_tool("demo")
    site.webservice("demo", "--backend", "gridengine", "static", "start", env=_path(grid))
    (grid / "qstat").write_text("#!/bin/sh\necho 'error: commlib error: got select error' >&2\nexit 1\n")

    done = site.webservice("demo", "status", env=_path(grid))

    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == "webservice: error: qstat failed (exit 1): error: commlib error: got select error"
    )


# kubernetes ---------------------------------------------------------------------------------


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubeApi, Path]]:
    api = FakeKubeApi().start()
    try:
        yield api, api.write_kubeconfig(tmp_path / "kubeconfig")
    finally:
        api.stop()


def test_kubernetes_start_makes_a_deployment_and_a_service_that_kube2proxy_would_route(
    tmp_path: Path, kube: tuple[FakeKubeApi, Path]
) -> None:
    api, kubeconfig = kube
    site = make_site(tmp_path, kubeconfig=str(kubeconfig))
    site.add_tool("demo")

    done = site.webservice(
        "demo", "--backend", "kubernetes", "generic", "start", "--", "srv", "--port={port}"
    )

    assert done.returncode == 0, done.stderr
    deployment = api.deployments[("tool-demo", "demo")]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == ["srv", "--port=8000"]
    service = api.state.services[("tool-demo", "demo")]
    assert service["metadata"]["labels"]["tools.wmflabs.org/webservice"] == "true"
    assert service["spec"]["ports"][0] == {
        "name": "http",
        "port": 8000,
        "targetPort": 8000,
        "protocol": "TCP",
    }
    assert site.status("demo")["running"] is True


def test_kubernetes_restart_rolls_out_in_place_and_keeps_the_service(
    tmp_path: Path, kube: tuple[FakeKubeApi, Path]
) -> None:
    api, kubeconfig = kube
    site = make_site(tmp_path, kubeconfig=str(kubeconfig))
    site.add_tool("demo")
    site.webservice("demo", "--backend", "kubernetes", "generic", "start", "--", "srv")
    cluster_ip = api.state.services[("tool-demo", "demo")]["spec"]["clusterIP"]
    version = api.deployments[("tool-demo", "demo")]["metadata"]["resourceVersion"]

    done = site.webservice("demo", "restart")

    assert done.returncode == 0, done.stderr
    assert api.deployments[("tool-demo", "demo")]["metadata"]["resourceVersion"] != version
    assert api.state.services[("tool-demo", "demo")]["spec"]["clusterIP"] == cluster_ip


def test_kubernetes_stop_deletes_both(tmp_path: Path, kube: tuple[FakeKubeApi, Path]) -> None:
    api, kubeconfig = kube
    site = make_site(tmp_path, kubeconfig=str(kubeconfig))
    site.add_tool("demo")
    site.webservice("demo", "--backend", "kubernetes", "generic", "start", "--", "srv")

    done = site.webservice("demo", "stop")

    assert done.returncode == 0, done.stderr
    assert ("tool-demo", "demo") not in api.deployments
    assert ("tool-demo", "demo") not in api.state.services
    assert site.status("demo")["wanted"] is False


def _container(api: FakeKubeApi, tool: str = "demo") -> dict[str, Any]:
    container: dict[str, Any] = api.deployments[(f"tool-{tool}", tool)]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def test_kubernetes_start_sizes_the_deployment_as_asked_and_records_it_in_the_manifest(
    tmp_path: Path, kube: tuple[FakeKubeApi, Path]
) -> None:
    api, kubeconfig = kube
    site = make_site(tmp_path, kubeconfig=str(kubeconfig))
    home = site.add_tool("demo")

    done = site.webservice(
        "demo", "--backend", "kubernetes", "--replicas", "2", "--cpu", "250m", "--mem", "1Gi",
        "generic", "start", "--", "srv",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert api.deployments[("tool-demo", "demo")]["spec"]["replicas"] == 2
    assert _container(api)["resources"] == {
        "limits": {"cpu": "250m", "memory": "1Gi"},
        "requests": {"cpu": "125m", "memory": "512Mi"},
    }
    written = yaml.safe_load((home / "service.manifest").read_text())
    assert (written["replicas"], written["cpu"], written["memory"]) == (2, "250m", "1Gi")


def test_kubernetes_without_a_size_runs_the_configured_default_and_records_none(
    tmp_path: Path, kube: tuple[FakeKubeApi, Path]
) -> None:
    api, kubeconfig = kube
    site = make_site(tmp_path, kubeconfig=str(kubeconfig), kube_memory="256Mi")
    home = site.add_tool("demo")

    done = site.webservice("demo", "--backend", "kubernetes", "generic", "start", "--", "srv")

    assert done.returncode == 0, done.stderr
    assert api.deployments[("tool-demo", "demo")]["spec"]["replicas"] == 1
    assert _container(api)["resources"] == {
        "limits": {"cpu": "500m", "memory": "256Mi"},
        "requests": {"cpu": "250m", "memory": "128Mi"},
    }
    # Not recorded: a tool that never chose a size follows the operator's default when it changes.
    assert not {"replicas", "cpu", "memory"} & set(yaml.safe_load((home / "service.manifest").read_text()))


def test_kubernetes_restart_keeps_the_recorded_size_and_changes_only_what_is_asked(
    tmp_path: Path, kube: tuple[FakeKubeApi, Path]
) -> None:
    api, kubeconfig = kube
    site = make_site(tmp_path, kubeconfig=str(kubeconfig))
    home = site.add_tool("demo")
    started = site.webservice(
        "demo", "--backend", "kubernetes", "-r", "3", "-m", "2Gi", "generic", "start", "--", "srv"
    )
    assert started.returncode == 0, started.stderr

    done = site.webservice("demo", "--cpu", "1", "restart")

    assert done.returncode == 0, done.stderr
    assert api.deployments[("tool-demo", "demo")]["spec"]["replicas"] == 3
    assert _container(api)["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert _container(api)["command"] == ["srv"]
    written = yaml.safe_load((home / "service.manifest").read_text())
    assert (written["replicas"], written["cpu"], written["memory"]) == (3, "1", "2Gi")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--mem", "512"], "memory '512' is 512 bytes: give a unit, such as 512Mi"),
        (["--cpu", "2"], "cpu '2' is more than the 1 a webservice may have"),
        (["--cpu", "-1"], "cpu '-1' is not a Kubernetes quantity (such as 500m, 0.5 or 1)"),
        (["--replicas", "0"], "replicas must be between 1 and 4, not 0"),
        (["--mem", "5Gi"], "memory '5Gi' is more than the 4Gi a webservice may have"),
    ],
)
def test_kubernetes_a_bad_size_is_one_line_and_changes_nothing(
    tmp_path: Path, kube: tuple[FakeKubeApi, Path], flags: list[str], message: str
) -> None:
    api, kubeconfig = kube
    site = make_site(tmp_path, kubeconfig=str(kubeconfig))
    home = site.add_tool("demo")

    done = site.webservice("demo", "--backend", "kubernetes", *flags, "generic", "start", "--", "srv")

    assert done.returncode == 2
    assert done.stderr.strip() == f"webservice: error: {message}"
    assert api.deployments == {} and ("tool-demo", "demo") not in api.state.services
    assert not (home / "service.manifest").exists()


def test_a_size_for_another_backend_is_a_usage_error(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    site.add_tool("demo")

    done = site.webservice("demo", "--backend", "local", "--cpu", "1", "generic", "start", "--", "srv")

    assert done.returncode == 2
    assert done.stderr.strip() == (
        "webservice: error: --replicas, --cpu and --mem are for the kubernetes backend, not local"
    )


def test_kubernetes_logs_reads_the_pods_log(tmp_path: Path, kube: tuple[FakeKubeApi, Path]) -> None:
    api, kubeconfig = kube
    site = make_site(tmp_path, kubeconfig=str(kubeconfig))
    site.add_tool("demo")
    site.webservice("demo", "--backend", "kubernetes", "generic", "start", "--", "srv")
    (pod,) = api.pods_of("tool-demo", "demo")
    api.write_log("tool-demo", pod, "starting\nGET /demo/ 200\nGET /demo/x 404\n")

    done = site.webservice("demo", "logs", "--lines", "2")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["GET /demo/ 200", "GET /demo/x 404"]


def test_kubernetes_logs_of_several_pods_name_the_pod_of_each_line(
    tmp_path: Path, kube: tuple[FakeKubeApi, Path]
) -> None:
    api, kubeconfig = kube
    site = make_site(tmp_path, kubeconfig=str(kubeconfig))
    site.add_tool("demo")
    site.webservice("demo", "--backend", "kubernetes", "--replicas", "2", "generic", "start", "--", "srv")
    first, second = api.pods_of("tool-demo", "demo")
    api.write_log("tool-demo", first, "one\n")
    api.write_log("tool-demo", second, "two\n")

    done = site.webservice("demo", "logs")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{first}: one", f"{second}: two"]


def test_kubernetes_logs_without_a_pod_is_one_line_and_fails(
    tmp_path: Path, kube: tuple[FakeKubeApi, Path]
) -> None:
    api, kubeconfig = kube
    site = make_site(tmp_path, kubeconfig=str(kubeconfig))
    site.add_tool("demo")
    site.webservice("demo", "--backend", "kubernetes", "generic", "start", "--", "srv")
    api.remove("deployments", "tool-demo", "demo")  # deleted behind webservice's back: no pods

    done = site.webservice("demo", "logs")

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "webservice: error: demo's webservice has no pod in namespace tool-demo: `webservice status` says why"
    )


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["status", "--cpu", "1"], "--replicas, --cpu and --mem go with start or restart, not status"),
        (["logs", "--lines", "0"], "argument --lines: must be a positive whole number, not '0'"),
    ],
)
def test_options_that_do_not_fit_the_action_are_usage_errors(
    tmp_path: Path, words: list[str], message: str
) -> None:
    site = make_site(tmp_path)
    site.add_tool("demo")

    done = site.webservice("demo", *words)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"webservice: error: {message}"
