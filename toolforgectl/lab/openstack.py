"""A real OpenStack control plane on loopback: the slow tier's cloud (`make slow`), and the cloud of
`toolforgectl lab up --proxies 2 --cloud openstack`.

Keystone, Neutron, Placement, Glance, Nova (and, with `dns=True`, Designate publishing to a BIND
of its own) from the venv that scripts/install-openstack.sh builds (`make slow` runs it first), on
a MariaDB and a RabbitMQ of their own, all in one temp dir, from fresh databases, on free loopback
ports below 32768 (the kernel's ephemeral range starts there: an outgoing connection could take a
port before a slow service binds it). No agent and no data plane run: Nova's FakeDriver "boots"
servers, Neutron binds their ports through our `lab` ML2 driver, and `L3AgentStandIn` reports
floating IPs' status as the L3 agent would; the APIs, the scheduling, the IPAM and the revision
numbers are all real. lab/openstackconf.py writes what each service reads.

`stop` ends every process `start` started, even after a failed start. Logs stay in the directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from toolforgectl.adapters.cloud import sdk_connection
from toolforgectl.adapters.processes import Process, free_port, signal_group, wait_for_port
from toolforgectl.core import config
from toolforgectl.core.errors import LabError
from toolforgectl.core.waiting import wait_until
from toolforgectl.lab.openstackconf import (
    ADMIN_PASSWORD,
    DB_PASSWORD,
    DB_USER,
    REGION,
    RNDC_KEY,
    Site,
    designate_confs,
    keystone_conf,
    named_conf,
    service_confs,
)

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "scripts" / "install-openstack.sh"
# The project and user toolforgectl works as, like an operator's clouds.yaml: a member, not admin.
PROJECT, USER, USER_PASSWORD = "tools", "toolforgectl", "lab-user-secret"
CLOUD = "lab"  # the user's clouds.yaml entry; "lab-admin" is the admin's
DATABASES = ("keystone", "neutron", "placement", "glance", "nova_api", "nova", "nova_cell0", "designate")
INFRASTRUCTURE = ("mysql", "epmd", "rabbitmq")  # what the services need until they are gone
ROUTER_INTERVAL = 0.5
API_START_TIMEOUT = 180.0  # six Python APIs importing at once on a loaded 2-core machine
ACTIVE_TIMEOUT = 120.0  # create to ACTIVE is ~4 s idle; scheduling waits for compute discovery


def venv() -> Path:
    """The control plane's venv: $TOOLFORGECTL_OPENSTACK_VENV, else where the install script puts it."""
    named = os.environ.get("TOOLFORGECTL_OPENSTACK_VENV")
    if named:
        return Path(named)
    path = subprocess.run(
        ["bash", str(INSTALL), "--print-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(path)


@dataclass
class Proxies:
    """What `seed_proxies` made: the tenant network, the servers by name, the floating IP."""

    network_id: str
    servers: dict[str, str]  # name -> id
    fixed_ips: dict[str, str]  # name -> fixed IPv4 address
    floating_ip: str
    floating_ip_id: str


@dataclass
class OpenStackCloud:
    """The control plane in `dir`; `computes` nova-compute hosts (two can hold an anti-affinity pair);
    `dns`: Designate too, with BIND as its DNS server (`ports["bind"]`). A port given in `ports`
    is used; the others are picked free below the ephemeral range."""

    dir: Path
    computes: int = 1
    dns: bool = False
    venv: Path = field(default_factory=venv)
    processes: list[Process] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    site: Site = field(init=False)
    _router: L3AgentStandIn = field(init=False)

    def __post_init__(self) -> None:
        names = (
            "mysql", "rabbit", "rabbit_dist", "epmd", "keystone", "neutron", "placement", "glance", "nova",
            "designate", "mdns", "bind", "rndc",
        )  # fmt: skip
        taken = set(self.ports.values())  # those given (the lab's BIND answers on the lab's DNS port)
        for name in names:
            if name in self.ports:
                continue
            port = free_port()
            while port in taken:
                port = free_port()
            taken.add(port)
            self.ports[name] = port
        self.site = Site(self.dir, self.venv, self.ports)
        self._router = L3AgentStandIn(self)

    # ---- the public face -------------------------------------------------------------------

    def url(self, service: str) -> str:
        return self.site.url(service)

    @property
    def clouds_yaml(self) -> Path:
        return self.dir / "clouds.yaml"

    def settings(self, floating_ip: str, servers: dict[str, str] | None = None) -> config.Cloud:
        """The fleet's `cloud:` section for this cloud, as the project user."""
        return config.Cloud(
            name=CLOUD, floating_ip=floating_ip, clouds_yaml=str(self.clouds_yaml), servers=servers or {}
        )

    def connect(self, cloud: str = CLOUD) -> Any:
        """A plain openstacksdk connection (the test's own hands; "lab-admin" for the admin)."""
        return sdk_connection(str(self.clouds_yaml), cloud)

    def start(self) -> OpenStackCloud:
        """Everything, from fresh databases; returns once the APIs answer and a compute host is known."""
        if not (self.venv / ".complete").is_file():
            raise LabError(f"{self.venv} is not installed: run scripts/install-openstack.sh (make slow does)")
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self._mysql()
            self._rabbit()
            self._keystone()
            self._write_clouds_yaml()
            self._catalog()
            service_confs(self.site, self.computes)
            self._sync_databases()
            self._start_services()
            self._router.start()
            if self.dns:
                self._designate()
        except BaseException:
            self.stop()
            raise
        return self

    def hand_over_status(self) -> None:
        """Stop the L3 agent's stand-in: another process reports status from now on (the lab's
        router, lab/neutronrouter.py, which outlives the `lab up` that started this)."""
        self._router.stop()

    def stop(self) -> None:
        """Stop every process started: the services all at once (Nova's take seconds each to shut
        down gracefully), then RabbitMQ (through rabbitmqctl), epmd and MariaDB."""
        self._router.stop()
        for process in self.processes:
            if process.name not in INFRASTRUCTURE:
                signal_group(process.group, signal.SIGTERM)
        for process in reversed(self.processes):
            if process.name == "rabbitmq" and process.alive():
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self._rabbitmqctl("stop", timeout=60)
            process.stop()
        self.processes.clear()

    # ---- the servers underneath ------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        """Start `argv` in its own session (its group is stopped as a whole), output to a log."""
        log = self.dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
                cwd=self.dir,
            )
        process = Process(name, popen.pid, "127.0.0.1", self.ports.get(name, 0), log, popen, popen.pid)
        self.processes.append(process)
        return process

    def _run(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, timeout: float = 600
    ) -> None:
        """Run a setup command to its end; LabError naming its log if it fails."""
        log = self.dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            done = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                cwd=self.dir, timeout=timeout, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise LabError(f"{' '.join(argv[:3])} failed ({done.returncode}); see {log}")

    def _bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def sql(self, database: str, statement: str) -> str:
        """Run `statement` in `database` as MariaDB's root; its output, tab-separated."""
        return sql(self.dir, database, statement)

    def give_floating_ip_address(self, proxies: Proxies, address: str) -> Proxies:
        """`proxies` with its floating IP at `address` in Neutron, one Neutron's API refuses (a
        loopback address: "not a routable CIDR"), but the only kind traffic can reach on this
        machine without root. Written in Neutron's database, as the L3 agent's stand-in writes
        status; the IPAM still holds the address it was created with, which nothing reads again."""
        fip = proxies.floating_ip_id
        self.sql("neutron", (
            f"UPDATE ipallocations SET ip_address = '{address}' WHERE port_id ="
            f" (SELECT floating_port_id FROM floatingips WHERE id = '{fip}');"
            f" UPDATE floatingips SET floating_ip_address = '{address}' WHERE id = '{fip}';"
        ))  # fmt: skip
        return replace(proxies, floating_ip=address)

    def _mysql(self) -> None:
        data = self.dir / "mysql"
        self._run("mariadb-install-db", [
            "mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
            "--auth-root-authentication-method=normal", "--skip-test-db",
        ])  # fmt: skip
        process = self._spawn("mysql", [
            "mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={self.dir / 'mysql.sock'}",
            f"--port={self.ports['mysql']}", "--bind-address=127.0.0.1", "--user=root",
            "--skip-name-resolve", "--innodb-buffer-pool-size=64M", "--max-connections=500",
        ])  # fmt: skip
        wait_for_port("127.0.0.1", self.ports["mysql"], process, API_START_TIMEOUT)
        grants = [f"CREATE USER '{DB_USER}'@'%' IDENTIFIED BY '{DB_PASSWORD}';"]
        for database in DATABASES:
            grants += [f"CREATE DATABASE {database};", f"GRANT ALL ON {database}.* TO '{DB_USER}'@'%';"]
        socket = f"--socket={self.dir / 'mysql.sock'}"
        self._run("mysql-setup", ["mariadb", "--no-defaults", socket, "-uroot", "-e", " ".join(grants)])

    def _rabbit_env(self) -> dict[str, str]:
        base = self.dir / "rabbitmq"
        plugins = base / "enabled_plugins"
        if not plugins.exists():
            (base / "home").mkdir(parents=True, exist_ok=True)
            plugins.write_text("[].\n")
        return {
            "HOME": str(base / "home"),  # its Erlang cookie, shared with rabbitmqctl
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_NODENAME": "lab@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.ports["rabbit"]),
            "RABBITMQ_DIST_PORT": str(self.ports["rabbit_dist"]),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.ports["epmd"]),
        }

    def _rabbit(self) -> None:
        env = self._rabbit_env()
        # Our own epmd, in the foreground: Erlang would start a daemonized one that outlives us.
        epmd = self._spawn("epmd", ["epmd", "-port", str(self.ports["epmd"]), "-address", "127.0.0.1"], env)
        wait_for_port("127.0.0.1", self.ports["epmd"], epmd)
        # The server itself, not Debian's wrapper (it would `su` to user rabbitmq).
        rabbit = self._spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env)
        wait_for_port("127.0.0.1", self.ports["rabbit"], rabbit, API_START_TIMEOUT)

    def _rabbitmqctl(self, *args: str, timeout: float = 30) -> None:
        subprocess.run(
            ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", "lab@localhost", *args],
            env={**os.environ, **self._rabbit_env()}, capture_output=True, timeout=timeout, check=True,
        )  # fmt: skip

    def _wait_queue(self, queue: str, consumer: Process) -> None:
        """Until RabbitMQ has queue `queue` (`consumer`, which declares it, started listening)."""

        def declared() -> bool:
            if not consumer.alive():
                raise LabError(f"{consumer.name} exited during start; see {consumer.log}")
            listed = subprocess.run(
                ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", "lab@localhost", "-q", "list_queues", "name"],
                env={**os.environ, **self._rabbit_env()}, capture_output=True, text=True, timeout=60,
                check=False,
            )  # fmt: skip
            return queue in listed.stdout.split()

        wait_until(declared, f"{consumer.name} to listen on RabbitMQ", API_START_TIMEOUT, 1.0, LabError)

    # ---- Keystone --------------------------------------------------------------------------

    def _keystone(self) -> None:
        conf = keystone_conf(self.site)
        manage = [self._bin("keystone-manage"), "--config-file", str(conf)]
        self._run("keystone-manage", [*manage, "db_sync"])
        owner = ["--keystone-user", "root", "--keystone-group", "root"]
        self._run("keystone-manage", [*manage, "fernet_setup", *owner])
        self._run("keystone-manage", [*manage, "credential_setup", *owner])
        url = f"{self.url('keystone')}/v3/"
        self._run("keystone-manage", [
            *manage, "bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-region-id", REGION,
            "--bootstrap-admin-url", url, "--bootstrap-public-url", url, "--bootstrap-internal-url", url,
        ])  # fmt: skip
        self._api("keystone", "keystone.wsgi.api", {"OS_KEYSTONE_CONFIG_FILES": str(conf)})
        self._wait_api("keystone")

    def _write_clouds_yaml(self) -> None:
        def entry(username: str, password: str, project: str) -> dict[str, Any]:
            return {
                "auth": {
                    "auth_url": f"{self.url('keystone')}/v3", "username": username, "password": password,
                    "project_name": project, "user_domain_name": "Default", "project_domain_name": "Default",
                },
                "region_name": REGION, "identity_api_version": 3, "api_timeout": 60,
            }  # fmt: skip

        doc = {
            "clouds": {
                CLOUD: entry(USER, USER_PASSWORD, PROJECT),
                "lab-admin": entry("admin", ADMIN_PASSWORD, "admin"),
            }
        }
        self.clouds_yaml.write_text(yaml.safe_dump(doc), encoding="utf-8")

    def _catalog(self) -> None:
        """The services' endpoints; the `service` role for the services' user (Nova sends
        X-Service-Token, which Neutron refuses without it); the project user toolforgectl is."""
        admin = self.connect("lab-admin")
        services = {
            "network": ("neutron", self.url("neutron")),
            "placement": ("placement", self.url("placement")),
            "image": ("glance", self.url("glance")),
            "compute": ("nova", f"{self.url('nova')}/v2.1"),
        }
        if self.dns:
            services["dns"] = ("designate", self.url("designate"))
        for kind, (name, url) in services.items():
            service = admin.identity.create_service(type=kind, name=name)
            for interface in ("public", "internal", "admin"):
                admin.identity.create_endpoint(
                    service_id=service.id, interface=interface, url=url, region_id=REGION
                )
        admin_user = admin.identity.find_user("admin", ignore_missing=False)
        admin_project = admin.identity.find_project("admin", ignore_missing=False)
        # keystone-manage bootstrap makes the role (Keystone 30 does); older ones did not
        service_role = admin.identity.find_role("service") or admin.identity.create_role(name="service")
        admin.identity.assign_project_role_to_user(admin_project, admin_user, service_role)
        project = admin.identity.create_project(name=PROJECT, domain_id="default")
        user = admin.identity.create_user(name=USER, password=USER_PASSWORD, domain_id="default")
        member = admin.identity.find_role("member", ignore_missing=False)
        admin.identity.assign_project_role_to_user(project, user, member)
        admin.close()

    # ---- the other services ----------------------------------------------------------------

    def _sync_databases(self) -> None:
        d = self.dir
        neutron = ["--config-file", str(d / "neutron" / "neutron.conf")]
        nova = ["--config-file", str(d / "nova" / "nova.conf")]
        # Two at a time: the machine has two cores.
        pairs = [
            (["neutron-db-manage", *neutron, "upgrade", "heads"],
             ["glance-manage", "--config-file", str(d / "glance" / "glance-api.conf"), "db_sync"]),
            (["nova-manage", *nova, "api_db", "sync"],
             ["placement-manage", "--config-file", str(d / "placement" / "placement.conf"), "db", "sync"]),
        ]  # fmt: skip
        for pair in pairs:
            self._run_together([[self._bin(argv[0]), *argv[1:]] for argv in pair])
        manage = [self._bin("nova-manage"), *nova]
        self._run(
            "nova-manage",
            [*manage, "cell_v2", "map_cell0", "--database_connection", self.site.db("nova_cell0")],
        )
        self._run("nova-manage", [*manage, "cell_v2", "create_cell", "--name", "cell1"])
        self._run("nova-manage", [*manage, "db", "sync"])

    def _run_together(self, commands: list[list[str]]) -> None:
        running = []
        for argv in commands:
            log = (self.dir / "logs" / f"{Path(argv[0]).name}.log").open("ab")
            running.append(
                (argv, log, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir))
            )
        failed = []
        for argv, log, popen in running:
            if popen.wait(timeout=600) != 0:
                failed.append(Path(argv[0]).name)
            log.close()
        if failed:
            raise LabError(f"{', '.join(failed)} failed; see {self.dir / 'logs'}")

    def _start_services(self) -> None:
        d = self.dir
        self._api(
            "neutron", "neutron.wsgi.api", {"OS_NEUTRON_CONFIG_FILES": str(d / "neutron" / "neutron.conf")}
        )
        self._api("placement", "placement.wsgi.api", {"OS_PLACEMENT_CONFIG_DIR": str(d / "placement")})
        self._api("glance", "glance.wsgi.api", {"OS_GLANCE_CONFIG_DIR": str(d / "glance")})
        self._api("nova", "nova.wsgi.osapi_compute", {"OS_NOVA_CONFIG_DIR": str(d / "nova")})
        nova = ["--config-file", str(d / "nova" / "nova.conf")]
        self._spawn("nova-conductor", [self._bin("nova-conductor"), *nova])
        self._spawn("nova-scheduler", [self._bin("nova-scheduler"), *nova])
        for n in range(1, self.computes + 1):
            conf = ["--config-file", str(d / "nova" / f"compute-{n}.conf")]
            self._spawn(f"nova-compute-{n}", [self._bin("nova-compute"), *nova, *conf])
        for name in ("neutron", "placement", "glance", "nova"):
            self._wait_api(name)
        self._wait_computes()

    def _api(self, name: str, module: str, env: dict[str, str]) -> None:
        self._spawn(name, [self._bin("lab-serve-wsgi"), module, "127.0.0.1", str(self.ports[name])], env)

    def _wait_api(self, name: str) -> None:
        process = next(p for p in self.processes if p.name == name)
        wait_for_port("127.0.0.1", self.ports[name], process, API_START_TIMEOUT)

        def answers() -> bool:
            try:
                with urllib.request.urlopen(self.url(name), timeout=5):
                    return True
            except urllib.error.HTTPError:
                return True  # an API's version document may answer 300 or 401: it answers
            except OSError:
                if not process.alive():
                    raise LabError(f"{name} exited during start; see {process.log}") from None
                return False

        wait_until(answers, f"{name}'s API to answer", API_START_TIMEOUT, 0.3, LabError)

    def _wait_computes(self) -> None:
        """Until Placement knows every compute host and Nova mapped them to cell1 (the scheduler
        discovers hosts every 2 s): before that, a server create fails with NoValidHost."""
        admin = self.connect("lab-admin")
        computes = [p for p in self.processes if p.name.startswith("nova-compute")]

        def known() -> bool:
            for process in computes:
                if not process.alive():
                    raise LabError(f"{process.name} exited during start; see {process.log}")
            services = [s for s in admin.compute.services() if s.binary == "nova-compute" and s.state == "up"]
            hypervisors = list(admin.compute.hypervisors())
            return len(services) == self.computes and len(hypervisors) == self.computes

        try:
            wait_until(
                known, f"{self.computes} nova-compute host(s) to be up", API_START_TIMEOUT, 1.0, LabError
            )
        finally:
            admin.close()

    # ---- Designate and BIND ----------------------------------------------------------------

    def _designate(self) -> None:
        """BIND with an rndc key Designate's bind9 backend uses to add zones, Designate's services
        on RabbitMQ; the pool (BIND as target, our mdns as its primary) loaded before the worker
        starts, as the worker reads it once."""
        d, p = self.dir / "designate", self.ports
        d.mkdir(parents=True, exist_ok=True)
        key = d / "rndc.key"
        self._run("rndc-confgen", ["rndc-confgen", "-a", "-k", RNDC_KEY, "-c", str(key)])
        named = self._spawn("named", ["named", "-g", "-c", str(named_conf(self.site, key)), "-u", "root"])
        wait_for_port("127.0.0.1", p["bind"], named, API_START_TIMEOUT)
        conf, pools = designate_confs(self.site, key)
        args = ["--config-file", str(conf)]
        self._run("designate-manage", [self._bin("designate-manage"), *args, "database", "sync"])
        central = self._spawn("designate-central", [self._bin("designate-central"), *args])
        # An RPC message sent before central declared its queue is dropped by RabbitMQ, and
        # `pool update` would wait 60 s for an answer that never comes.
        self._wait_queue("central", central)
        self._run("designate-manage", [
            self._bin("designate-manage"), *args, "pool", "update", "--file", str(pools),
        ])  # fmt: skip
        for service in ("worker", "producer", "mdns"):
            self._spawn(f"designate-{service}", [self._bin(f"designate-{service}"), *args])
        self._api("designate", "designate.wsgi.api", {"OS_DESIGNATE_CONFIG_DIR": str(d)})
        mdns = next(x for x in self.processes if x.name == "designate-mdns")
        wait_for_port("127.0.0.1", p["mdns"], mdns, API_START_TIMEOUT)
        self._wait_api("designate")

    def dig(self, name: str) -> list[str]:
        """What BIND answers for `name`'s A records (with `dig`, as an operator would ask)."""
        done = subprocess.run(
            ["dig", "+short", "+time=2", "+tries=1", "-p", str(self.ports["bind"]), "@127.0.0.1", name, "A"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return sorted(line for line in done.stdout.split() if line[:1].isdigit())

    # ---- what the tests run against --------------------------------------------------------

    def seed_proxies(self, names: tuple[str, ...] = ("proxy-01", "proxy-02")) -> Proxies:
        """A fleet's cloud: a tenant network behind a router to the external network `public`,
        one server per name on it, and a floating IP on the first (as the project user; the
        image, the flavor and the external network as the admin)."""
        admin = self.connect("lab-admin")
        image = admin.image.create_image(
            name="lab-image", data=b"\0" * 1024, disk_format="raw", container_format="bare",
            visibility="public", wait=True, allow_duplicates=True,
        )  # fmt: skip
        flavor = admin.compute.create_flavor(name="lab.small", ram=64, vcpus=1, disk=1)
        public = admin.network.create_network(
            name="public", is_router_external=True, provider_network_type="flat",
            provider_physical_network="public",
        )  # fmt: skip
        admin.network.create_subnet(
            network_id=public.id, ip_version=4, cidr="203.0.113.0/24", enable_dhcp=False, name="public"
        )
        admin.close()

        user = self.connect()
        net = user.network.create_network(name="lab-net")
        subnet = user.network.create_subnet(
            network_id=net.id, ip_version=4, cidr="172.16.0.0/24", name="lab-net"
        )
        router = user.network.create_router(
            name="lab-router", external_gateway_info={"network_id": public.id}
        )
        user.network.add_interface_to_router(router, subnet=subnet.id)
        created = [
            user.compute.create_server(
                name=name, image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": net.id}]
            )
            for name in names
        ]
        servers = {s.name: user.compute.wait_for_server(s, wait=int(ACTIVE_TIMEOUT)).id for s in created}
        fixed_ips = {}
        for name, server_id in servers.items():
            (port,) = user.network.ports(device_id=server_id)
            fixed_ips[name] = port.fixed_ips[0]["ip_address"]
        (first_port,) = user.network.ports(device_id=servers[names[0]])
        fip = user.network.create_ip(floating_network_id=public.id, port_id=first_port.id)
        # Created DOWN; ACTIVE (one revision on) once the L3 agent's stand-in reported it.
        wait_until(
            lambda: user.network.get_ip(fip.id).status == "ACTIVE", "the floating IP to be ACTIVE", 60.0, 0.2
        )
        user.close()
        return Proxies(net.id, servers, fixed_ips, str(fip.floating_ip_address), str(fip.id))


class L3AgentStandIn:
    """What Neutron's L3 agent reports, without a router: a floating IP is ACTIVE while it is
    associated with a port, DOWN while not.

    No L3 agent runs here (it needs network namespaces, iptables and Open vSwitch), so without this
    a floating IP stays DOWN forever and `wait_associated` could never return. The agent reports
    through RPC (`update_floatingip_status`), which bumps the revision like any change; so does
    this, in Neutron's database. Like the agent it reports a change of status only: Neutron does
    not reset the status when a floating IP moves between ports, so a move keeps ACTIVE.
    """

    STATEMENT = (
        "UPDATE floatingips f JOIN standardattributes s ON s.id = f.standard_attr_id"
        " SET f.status = IF(f.fixed_port_id IS NULL, 'DOWN', 'ACTIVE'),"
        " s.revision_number = s.revision_number + 1, s.updated_at = UTC_TIMESTAMP()"
        " WHERE f.status <> IF(f.fixed_port_id IS NULL, 'DOWN', 'ACTIVE')"
    )

    def __init__(self, cloud: OpenStackCloud) -> None:
        self._cloud = cloud
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="l3-agent-stand-in", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stopping.wait(ROUTER_INTERVAL):
            with contextlib.suppress(LabError, subprocess.SubprocessError):
                self._cloud.sql("neutron", self.STATEMENT)


def sql(directory: Path, database: str, statement: str) -> str:
    """Run `statement` in `database` of the MariaDB of the control plane in `directory`, as its
    root; its output, tab-separated."""
    done = subprocess.run(
        ["mariadb", "--no-defaults", f"--socket={directory / 'mysql.sock'}", "-uroot", "-N", "-B",
         database, "-e", statement],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise LabError(f"SQL in {database} failed: {done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def running_openstack(directory: Path, computes: int = 1, dns: bool = False) -> Iterator[OpenStackCloud]:
    """The control plane, started in `directory` and stopped, all of it, on the way out."""
    cloud = OpenStackCloud(directory, computes, dns=dns).start()
    try:
        yield cloud
    finally:
        cloud.stop()
