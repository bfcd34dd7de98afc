"""What each service of the slow tier's OpenStack is told: its configuration files, nothing else.

lab/openstack.py starts the processes; this module writes what they read, for a
`Site` (the directory, the control plane's venv, the ports). Every service authenticates to the
others as the admin, who has the `service` role; every API validates tokens without a cache.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

REGION = "RegionOne"
ADMIN_PASSWORD = "lab-admin-secret"
DB_USER, DB_PASSWORD = "os", "lab-db-secret"
RNDC_KEY = "rndc-key"  # the key's name in rndc.key, named.conf and rndc.conf


@dataclass(frozen=True)
class Site:
    """Where the control plane lives: its directory, its venv, the port of each server by name."""

    dir: Path
    venv: Path
    ports: dict[str, int]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def db(self, name: str) -> str:
        return f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.ports['mysql']}/{name}"

    def transport_url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.ports['rabbit']}/"

    def auth(self) -> dict[str, object]:
        """How a service authenticates to the others: as the admin, who has the `service` role."""
        return {
            "auth_url": self.url("keystone"), "auth_type": "password", "project_domain_name": "Default",
            "user_domain_name": "Default", "project_name": "admin", "username": "admin",
            "password": ADMIN_PASSWORD, "region_name": REGION,
        }  # fmt: skip

    def authtoken(self) -> dict[str, object]:
        """An API's [keystone_authtoken]. No token cache: a token Keystone revoked is refused at
        once, as an expired one is (the tests make a token "expire" by revoking it)."""
        return {"www_authenticate_uri": self.url("keystone"), "token_cache_time": -1, **self.auth()}


def keystone_conf(site: Site) -> Path:
    d = site.dir / "keystone"
    return ini(d / "keystone.conf", {
        "database": {"connection": site.db("keystone")},
        "token": {"provider": "fernet"},
        "fernet_tokens": {"key_repository": d / "fernet-keys"},
        "fernet_receipts": {"key_repository": d / "fernet-keys"},
        "credential": {"key_repository": d / "credential-keys"},
    })  # fmt: skip


def service_confs(site: Site, computes: int) -> None:
    """neutron.conf, placement.conf, glance-api.conf (+ its paste file), nova.conf (+ api-paste.ini),
    and one file per nova-compute host naming it (`compute-N`)."""
    d, etc = site.dir, site.venv / "etc"
    for sub in ("neutron", "placement", "glance", "nova", "locks", "images"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    ini(d / "neutron" / "neutron.conf", {
        "DEFAULT": {
            "core_plugin": "ml2", "service_plugins": "router", "auth_strategy": "keystone",
            # No agent to talk to: Neutron needs no message bus, and no RPC workers.
            "transport_url": "fake://", "notify_nova_on_port_status_changes": True,
            "notify_nova_on_port_data_changes": True, "api_workers": 1, "rpc_workers": 0,
            "rpc_state_report_workers": 0, "state_path": d / "neutron",
            "api_paste_config": etc / "neutron" / "api-paste.ini",
        },
        "database": {"connection": site.db("neutron")},
        "keystone_authtoken": site.authtoken(),
        "nova": site.auth(),  # without it Neutron cannot tell Nova, and servers never show a floating IP
        "oslo_concurrency": {"lock_path": d / "locks"},
        "ml2": {
            "type_drivers": "flat,vxlan", "tenant_network_types": "vxlan",
            "mechanism_drivers": "lab", "extension_drivers": "port_security",
        },
        "ml2_type_flat": {"flat_networks": "public"},
        "ml2_type_vxlan": {"vni_ranges": "1:1000"},
    })  # fmt: skip
    ini(d / "placement" / "placement.conf", {
        "placement_database": {"connection": site.db("placement")},
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": site.authtoken(),
    })  # fmt: skip
    shutil.copy(etc / "glance" / "glance-api-paste.ini", d / "glance")
    ini(d / "glance" / "glance-api.conf", {
        "DEFAULT": {"enabled_backends": "fs:file"},
        "database": {"connection": site.db("glance")},
        "keystone_authtoken": site.authtoken(),
        "paste_deploy": {"flavor": "keystone", "config_file": d / "glance" / "glance-api-paste.ini"},
        "glance_store": {"default_backend": "fs"},
        "fs": {"filesystem_store_datadir": d / "images" / "fs"},
        "os_glance_staging_store": {"filesystem_store_datadir": d / "images" / "staging"},
        "os_glance_tasks_store": {"filesystem_store_datadir": d / "images" / "tasks"},
    })  # fmt: skip
    shutil.copy(etc / "nova" / "api-paste.ini", d / "nova")
    ini(d / "nova" / "nova.conf", {
        "DEFAULT": {
            "transport_url": site.transport_url(), "compute_driver": "fake.FakeDriver",
            "host": "compute-1", "my_ip": "127.0.0.1", "state_path": d / "nova",
        },
        "api": {"auth_strategy": "keystone"},
        "wsgi": {"api_paste_config": d / "nova" / "api-paste.ini"},
        "api_database": {"connection": site.db("nova_api")},
        "database": {"connection": site.db("nova")},
        "keystone_authtoken": site.authtoken(),
        "placement": site.auth(),
        "neutron": site.auth(),
        "glance": site.auth(),
        # Nova sends X-Service-Token with the user's; Neutron wants the `service` role behind it.
        "service_user": {"send_service_user_token": True, **site.auth()},
        "scheduler": {"discover_hosts_in_cells_interval": 2},
        "vnc": {"enabled": False},
        "oslo_messaging_notifications": {"driver": "noop"},
        "oslo_concurrency": {"lock_path": d / "locks"},
    })  # fmt: skip
    for n in range(1, computes + 1):
        ini(d / "nova" / f"compute-{n}.conf", {"DEFAULT": {"host": f"compute-{n}"}})


def named_conf(site: Site, key: Path) -> Path:
    """BIND: authoritative only, on loopback, zones added over rndc (Designate's bind9 backend)."""
    d, p = site.dir / "designate", site.ports
    (d / "rndc.conf").write_text(
        f'include "{key}";\n'
        f'options {{ default-key "{RNDC_KEY}"; default-server 127.0.0.1; default-port {p["rndc"]}; }};\n'
    )
    conf = d / "named.conf"
    conf.write_text(f"""include "{key}";
options {{
    directory "{d}";
    pid-file "{d / "named.pid"}";
    session-keyfile "{d / "session.key"}";
    listen-on port {p["bind"]} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    allow-new-zones yes;
    recursion no;
    allow-query {{ 127.0.0.1; }};
    allow-notify {{ 127.0.0.1; }};
    dnssec-validation no;
}};
controls {{ inet 127.0.0.1 port {p["rndc"]} allow {{ 127.0.0.1; }} keys {{ "{RNDC_KEY}"; }}; }};
""")
    return conf


def designate_confs(site: Site, key: Path) -> tuple[Path, Path]:
    """designate.conf (+ api-paste.ini) and pools.yaml: one pool, BIND as its target and
    nameserver, Designate's mdns as BIND's primary. `workers = 1` everywhere: Designate refuses
    to start without it on the threading backend."""
    d, p = site.dir / "designate", site.ports
    pool = [{
        "name": "default", "description": "the lab's BIND", "attributes": {},
        "ns_records": [{"hostname": "ns1.lab.test.", "priority": 1}],
        "nameservers": [{"host": "127.0.0.1", "port": p["bind"]}],
        "targets": [{
            "type": "bind9", "description": "BIND",
            "masters": [{"host": "127.0.0.1", "port": p["mdns"]}],
            "options": {
                "host": "127.0.0.1", "port": p["bind"], "rndc_host": "127.0.0.1", "rndc_port": p["rndc"],
                "rndc_key_file": str(key), "rndc_config_file": str(d / "rndc.conf"),
            },
        }],
    }]  # fmt: skip
    pools = d / "pools.yaml"
    pools.write_text(yaml.safe_dump(pool))
    shutil.copy(site.venv / "etc" / "designate" / "api-paste.ini", d)
    conf = ini(d / "designate.conf", {
        "DEFAULT": {"transport_url": site.transport_url(), "state_path": d},
        "storage:sqlalchemy": {"connection": site.db("designate")},
        "keystone_authtoken": site.authtoken(),
        "service:api": {
            "workers": 1, "listen": f"127.0.0.1:{p['designate']}", "auth_strategy": "keystone",
            "enable_api_v2": True, "api_paste_config": d / "api-paste.ini",
        },
        "service:mdns": {"workers": 1, "listen": f"127.0.0.1:{p['mdns']}"},
        "service:worker": {"workers": 1, "poll_delay": 1, "poll_retry_interval": 1},
        "service:central": {"workers": 1},
        "service:producer": {"workers": 1},
        "oslo_concurrency": {"lock_path": site.dir / "locks"},
    })  # fmt: skip
    return conf, pools


def ini(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    """An oslo.config file: booleans as oslo writes them, everything else as its str()."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        for key, value in options.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            lines.append(f"{key} = {text}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
