"""`toolforgectl render units`: systemd units a Debian host accepts, sandboxed, pointing at the install.

systemd's own tools judge the rendered files: `systemd-analyze verify` (every directive known, every
program there), `systemd-analyze security --offline` (each daemon rated OK or better),
`systemd-sysusers` and `systemd-tmpfiles` run against a scratch root directory.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

DAEMONS = ("proxylistener", "kube2proxy", "webservicemonitor")
# `systemd-analyze security`'s verdict, and the worst one allowed (exposure below 5.0).
VERDICT = re.compile(r"Overall exposure level for (?P<unit>\S+): (?P<exposure>[\d.]+) (?P<rating>[A-Z]+)")
GOOD_ENOUGH = ("PERFECT", "SAFE", "OK")
# Debian's nginx.service, which the drop-in changes (package nginx-common).
NGINX_UNIT = Path("/lib/systemd/system/nginx.service")


def systemd_tool(name: str) -> str:
    """A systemd program's path; missing, the test fails (scripts/setup.sh installs them)."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: install Debian's `systemd` package (scripts/setup.sh does)")
    return found


def write_fleet(tmp_path: Path, extra: str = "") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "fleet.yaml"
    path.write_text("proxies:\n  - {name: proxy-01, address: 10.0.0.5}\n" + extra)
    return path


def render_units(tmp_path: Path, prefix: Path, extra: str = "") -> Path:
    """The units rendered for programs in `prefix`/bin, as under /etc in the returned directory."""
    out = tmp_path / "etc"
    fleet = write_fleet(tmp_path, extra)
    done = run_cli("--config", str(fleet), "render", "units", "--prefix", str(prefix), "--out", str(out))
    assert done.code == 0, done.stderr
    return out


def verify(units: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on every rendered unit, and on Debian's nginx.service with the drop-in."""
    system = units / "systemd" / "system"
    assert NGINX_UNIT.exists(), f"{NGINX_UNIT} is missing: install Debian's nginx (scripts/setup.sh does)"
    shutil.copy(NGINX_UNIT, system / "nginx.service")
    names = sorted(p.name for p in system.iterdir() if p.suffix in (".service", ".socket"))
    return subprocess.run(
        [systemd_tool("systemd-analyze"), "verify", *names],
        cwd=system,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def unit(units: Path, name: str) -> str:
    return (units / "systemd" / "system" / name).read_text()


def test_units_for_this_virtualenv_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = render_units(tmp_path, Path(sys.prefix))
    done = verify(units)
    # verify only warns about an unknown directive (exit 0): any word from it is a failure.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    for daemon in DAEMONS:
        assert f"ExecStart={sys.prefix}/bin/{daemon} --config /etc/toolforgectl/config.yaml" in unit(
            units, f"{daemon}.service"
        )


def test_verify_rejects_units_whose_programs_are_not_installed(tmp_path: Path) -> None:
    done = verify(render_units(tmp_path, Path("/usr/local")))
    assert done.returncode != 0
    for daemon in DAEMONS:
        assert f"/usr/local/bin/{daemon} is not executable" in done.stderr


@pytest.mark.parametrize("daemon", DAEMONS)
def test_each_daemon_is_rated_ok_or_better_by_systemd_analyze_security(tmp_path: Path, daemon: str) -> None:
    system = render_units(tmp_path, Path(sys.prefix)) / "systemd" / "system"
    done = subprocess.run(
        [
            systemd_tool("systemd-analyze"),
            "security",
            "--offline=true",
            "--threshold=49",
            daemon + ".service",
        ],
        cwd=system,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    verdict = VERDICT.search(done.stdout)
    assert verdict is not None, done.stdout + done.stderr
    assert verdict["rating"] in GOOD_ENOUGH and float(verdict["exposure"]) < 5.0, verdict[0]
    assert done.returncode == 0, verdict[0]


def test_sysusers_creates_the_users_the_units_run_as(tmp_path: Path) -> None:
    units = render_units(tmp_path, Path(sys.prefix))
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", root / "etc" / name)
    sysusers = units / "sysusers.d" / "toolforgectl.conf"
    done = subprocess.run(
        [systemd_tool("systemd-sysusers"), f"--root={root}", str(sysusers)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = (root / "etc" / "passwd").read_text().splitlines()
    accounts = {line.split(":")[0]: line.split(":") for line in lines}
    for daemon in DAEMONS:
        user = re.search(r"^User=(\S+)$", unit(units, f"{daemon}.service"), re.MULTILINE)
        if user is None:  # webservicemonitor: root, with a capability set of four
            assert "CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_DAC_OVERRIDE CAP_CHOWN" in unit(
                units, f"{daemon}.service"
            )
            continue
        assert user[1] in accounts, f"{daemon} runs as {user[1]}, which sysusers.d does not create"
        assert accounts[user[1]][6] == "/usr/sbin/nologin"
        assert int(accounts[user[1]][2]) < 1000  # a system user


def test_tmpfiles_gives_the_data_plane_run_dir_to_nginx_workers_only(tmp_path: Path) -> None:
    # nginx's workers' user from the fleet: one this test may chown to when not root.
    workers = "www-data" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    units = render_units(tmp_path, Path(sys.prefix), f"dataplane: {{user: {workers}}}\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    shutil.copy("/etc/passwd", root / "etc" / "passwd")
    shutil.copy("/etc/group", root / "etc" / "group")
    tmpfiles = units / "tmpfiles.d" / "toolforgectl.conf"
    done = subprocess.run(
        [systemd_tool("systemd-tmpfiles"), f"--root={root}", "--create", str(tmpfiles)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    run_dir = root / "run" / "toolforgectl-nginx"
    assert (run_dir.stat().st_mode & 0o777, run_dir.stat().st_uid) == (0o700, pwd.getpwnam(workers).pw_uid)


def test_nginx_drop_in_runs_the_rendered_config_and_its_pid_file(tmp_path: Path) -> None:
    units = render_units(tmp_path, Path(sys.prefix))
    nginx_conf = run_cli("--config", str(tmp_path / "fleet.yaml"), "render").stdout
    pid = re.search(r"^pid (\S+);$", nginx_conf, re.MULTILINE)
    assert pid is not None
    drop_in = unit(units, "nginx.service.d/toolforgectl.conf")
    assert f"PIDFile={pid[1]}" in drop_in and f"--pidfile {pid[1]}" in drop_in
    assert "ExecStart=/usr/sbin/nginx -c /etc/nginx/toolforgectl/nginx.conf " in drop_in
    tmpfiles = (units / "tmpfiles.d" / "toolforgectl.conf").read_text()
    assert re.search(rf"^d\s+{Path(pid[1]).parent}\s+0700\s+www-data\s", tmpfiles, re.MULTILINE)
    # A reload checks the new config first, so a broken one leaves the old one serving.
    reloads = re.findall(r"^ExecReload=(.+)$", drop_in, re.MULTILINE)
    assert [" -t " in line for line in reloads] == [True, False]


def test_the_socket_unit_listens_where_the_fleet_config_says(tmp_path: Path) -> None:
    units = render_units(tmp_path, Path(sys.prefix), "proxylistener: {listen: '::', port: 8383}\n")
    assert "ListenStream=[::]:8383\n" in unit(units, "proxylistener.socket")


def test_webservicemonitor_may_write_in_the_tools_homes_the_fleet_config_names(tmp_path: Path) -> None:
    srv = render_units(tmp_path / "srv", Path(sys.prefix), "webservice: {home: '/srv/tools/{tool}/home'}\n")
    assert "ReadWritePaths=-/srv/tools\n" in unit(srv, "webservicemonitor.service")
    assert "ProtectHome=yes" in unit(srv, "webservicemonitor.service")
    # Homes under /home: ProtectHome= would hide them from the monitor.
    home = render_units(tmp_path / "home", Path(sys.prefix), "webservice: {home: '/home/{tool}'}\n")
    assert "ReadWritePaths=-/home\n" in unit(home, "webservicemonitor.service")
    assert "ProtectHome" not in unit(home, "webservicemonitor.service")


def test_options_of_the_data_plane_render_are_not_silently_dropped_before_units(tmp_path: Path) -> None:
    done = run_cli("--config", str(write_fleet(tmp_path)), "render", "--out", str(tmp_path / "x"), "units")
    assert done.code == 2 and "after `units`" in done.stderr
    assert not (tmp_path / "x").exists()


def test_daemons_dir_holds_exactly_what_render_units_makes_for_a_package(tmp_path: Path) -> None:
    """daemons/ is generated (scripts/render-daemons.sh): a template edited and not re-rendered fails here."""
    root = Path(__file__).resolve().parents[2]
    fresh = tmp_path / "daemons"
    env = {**os.environ, "TOOLFORGECTL": str(Path(sys.executable).parent / "toolforgectl")}
    subprocess.run(["bash", str(root / "scripts" / "render-daemons.sh"), str(fresh)], env=env, check=True)

    def tree(top: Path) -> dict[str, str]:
        return {str(p.relative_to(top)): p.read_text() for p in sorted(top.rglob("*")) if p.is_file()}

    assert tree(root / "daemons") == tree(fresh), "daemons/ is stale: run scripts/render-daemons.sh"
    assert "ExecStart=/usr/bin/proxylistener" in (root / "daemons" / "proxylistener.service").read_text()
