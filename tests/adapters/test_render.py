"""`toolforgectl render`: the rendered config of a proxy, on stdout or as files nginx accepts."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

from tests.conftest import run_cli
from toolforgectl.adapters import nginx as frontproxy
from toolforgectl.adapters.render import host_domains
from toolforgectl.core import config


def write_fleet(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "proxies:\n"
        "  - {name: proxy-01, address: 127.0.0.1, redis: 'redis://127.0.0.1:6390/3'}\n"
        "  - {name: proxy-02, address: 127.0.0.2, redis: 'redis://127.0.0.2:6390/0'}\n" + extra
    )
    return path


def test_render_prints_every_file_of_the_active_proxy(tmp_path: Path) -> None:
    done = run_cli("--config", str(write_fleet(tmp_path)), "render")
    assert done.code == 0, done.stderr
    assert "# ===== nginx.conf =====" in done.stdout and "# ===== errors/503.html =====" in done.stdout
    assert "listen 127.0.0.1:443 ssl" in done.stdout and "listen 127.0.0.1:8081;" in done.stdout
    assert "server_tokens off;" in done.stdout


def test_render_for_another_proxy_uses_its_address_and_redis(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli("--config", str(write_fleet(tmp_path)), "--proxy", "proxy-02", "render", "--out", str(out))
    assert done.code == 0, done.stderr
    assert "listen 127.0.0.2:443 ssl" in (out / "conf" / "urlproxy.conf").read_text()
    settings = json.loads((out / "conf" / "urlproxy.json").read_text())
    assert (settings["redis_host"], settings["redis_port"], settings["redis_db"]) == ("127.0.0.2", 6390, 0)


def test_rate_limit_is_rendered_only_when_configured(tmp_path: Path) -> None:
    plain = run_cli("--config", str(write_fleet(tmp_path)), "render").stdout
    limited = run_cli("--config", str(write_fleet(tmp_path, "dataplane: {rate_limit: 7}\n")), "render").stdout
    assert "limit_req" not in plain
    assert "rate=7r/s" in limited and "limit_req_status 429;" in limited


def test_render_refuses_a_redis_password(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("proxies: [{name: p, address: 127.0.0.1, redis: 'redis://:secret@127.0.0.1:6379/0'}]\n")
    done = run_cli("--config", str(path), "render")
    assert done.code == 1
    assert "password" in done.stderr and "secret" not in done.stderr


def test_render_refuses_a_run_dir_too_long_for_the_slow_path_socket(tmp_path: Path) -> None:
    out = tmp_path / ("d" * 120)
    done = run_cli("--config", str(write_fleet(tmp_path)), "render", "--out", str(out))
    assert done.code == 1
    assert "slow.sock" in done.stderr and "107 bytes" in done.stderr
    assert not (out / "conf" / "urlproxy.conf").exists()


def test_render_out_makes_a_run_dir_only_nginx_workers_enter(tmp_path: Path) -> None:
    out = tmp_path / "out"
    fleet = write_fleet(tmp_path, "dataplane: {user: nobody}\n")
    done = run_cli("--config", str(fleet), "render", "--out", str(out))
    assert done.code == 0, done.stderr
    run = out / "run"
    assert run.stat().st_mode & 0o777 == 0o700
    if os.geteuid() == 0:  # only root can hand it over
        assert pwd.getpwuid(run.stat().st_uid).pw_name == "nobody"


def test_gzip_and_the_body_limit_follow_the_settings(tmp_path: Path) -> None:
    plain = run_cli("--config", str(write_fleet(tmp_path)), "render").stdout
    changed = write_fleet(tmp_path, "dataplane: {gzip: false, client_max_body_size: 10m}\n")
    tuned = run_cli("--config", str(changed), "render").stdout
    assert "gzip on;" in plain and "client_max_body_size 128m;" in plain  # the original's values
    assert "gzip on;" not in tuned and "client_max_body_size 10m;" in tuned


def test_the_hop_marker_is_the_proxys_name_and_every_fleet_proxy_counts_as_a_loop(tmp_path: Path) -> None:
    rendered = run_cli("--config", str(write_fleet(tmp_path)), "--proxy", "proxy-02", "render").stdout
    assert 'proxy_set_header X-Toolforgectl-Hop "proxy-02";' in rendered
    assert '"~*\\|(.*[^a-z0-9.-])?(proxy-01|proxy-02)([^a-z0-9.-].*)?$" loop;' in rendered


def test_only_a_configured_domain_gets_a_catch_all_server_and_only_path_mode_hides_service_workers(
    tmp_path: Path,
) -> None:
    plain = run_cli("--config", str(write_fleet(tmp_path)), "render").stdout
    named = write_fleet(tmp_path, "dataplane: {server_name: tools.example, routing: host}\n")
    domain = run_cli("--config", str(named), "render").stdout
    assert plain.count("default_server") == 2 and 'server_name "";' not in plain
    assert domain.count("default_server") == 2 and 'server_name "";' in domain
    assert "proxy_hide_header Service-Worker-Allowed;" in plain
    assert "Service-Worker-Allowed" not in domain


def test_nginx_accepts_the_config_of_a_fleet_with_a_proxy_name_of_the_longest_kind(tmp_path: Path) -> None:
    # The hop-marker map has the proxies' names as keys: a host name may be 253 characters long.
    name = ".".join(["p" * 63] * 3) + "." + "q" * 61
    text = f"proxies: [{{name: {name}, address: 127.0.0.1, redis: 'redis://127.0.0.1:6390/0'}}]\n"
    cert, key = frontproxy.self_signed(tmp_path / "tls")
    fleet = frontproxy.with_tls(config.parse(text, "fleet.yaml"), cert, key)
    frontproxy.check_config(frontproxy.render_into(fleet, name, tmp_path / "out"))


def test_host_mode_names_tools_only_directly_under_server_names_wildcard_domains(tmp_path: Path) -> None:
    def domains(dataplane: str) -> list[str]:
        return host_domains(config.load(write_fleet(tmp_path, f"dataplane: {dataplane}\n")).dataplane)

    assert domains("{routing: host, server_name: '*.Toolforge.org .tools.example ~^x other.example'}") == [
        ".toolforge.org",
        ".tools.example",
    ]
    assert domains("{routing: host, server_name: _}") == []  # any host: its first label is the tool
    assert domains("{routing: path, server_name: '*.toolforge.org'}") == []
