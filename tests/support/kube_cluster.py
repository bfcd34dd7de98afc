"""A real kube-apiserver 1.20 and its etcd in a temp dir, on loopback ports below 32768.

The binary comes from scripts/build-kube-apiserver.sh (`make slow` runs it first); etcd from
Debian's etcd-server. Service watches bypass the watch cache (`services#0`) so compacting etcd
through its JSON gateway makes a watch from an older resourceVersion end in 410 Gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from toolforgectl.adapters.processes import Process, free_port, spawn
from toolforgectl.core.errors import LabError
from toolforgectl.core.waiting import wait_until

TOKEN = "lab-admin-token"
SERVICE_RANGE = "127.96.0.0/16"  # clusterIPs on loopback: nothing is ever reached by accident
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "toolforgectl"
BINARY = Path(os.environ.get("TOOLFORGECTL_KUBE_APISERVER", CACHE / "kube-apiserver-1.20.2"))


class Cluster:
    """etcd + kube-apiserver; `api_port` is HTTPS with a self-signed certificate."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.etcd_port, self.peer_port, self.api_port = (free_port() for _ in range(3))
        self.etcd: Process | None = None
        self.apiserver: Process | None = None

    def start(self) -> Cluster:
        """Start etcd, then the apiserver, and wait until it is ready."""
        if not BINARY.exists():
            raise LabError(f"{BINARY} is missing: run scripts/build-kube-apiserver.sh (make slow does)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._keys()
        url = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        etcd = shutil.which("etcd") or "/usr/bin/etcd"
        argv = [
            etcd, "--name", "lab", "--data-dir", str(self.dir / "etcd"),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"lab={peer}",
        ]  # fmt: skip
        self.etcd = spawn("etcd", argv, self.dir / "etcd.log", "127.0.0.1", self.etcd_port)
        self.start_apiserver()
        return self

    def start_apiserver(self, attempts: int = 3) -> None:
        """Start kube-apiserver and wait for /readyz; retried, as a 1.20 built with go 1.19 has
        been seen to crash during its first seconds."""
        for _ in range(attempts):
            self.apiserver = spawn(
                "kube-apiserver", self._argv(), self.dir / "apiserver.log", "127.0.0.1", self.api_port
            )
            with contextlib.suppress(LabError):
                wait_until(self._ready(self.apiserver), "kube-apiserver's /readyz", 60.0, 0.3, LabError)
                return
            self.apiserver.stop()
        raise LabError(f"kube-apiserver never became ready; see {self.dir / 'apiserver.log'}")

    def stop_apiserver(self) -> None:
        if self.apiserver is not None:
            self.apiserver.stop()

    def stop(self) -> None:
        """Stop both; the temp dir stays for the logs."""
        self.stop_apiserver()
        if self.etcd is not None:
            self.etcd.stop()

    def _argv(self) -> list[str]:
        d = self.dir
        return [
            str(BINARY), f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}", "--insecure-port=0", f"--cert-dir={d / 'certs'}",
            f"--token-auth-file={d / 'tokens.csv'}", "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            "--endpoint-reconciler-type=none", "--watch-cache-sizes=services#0",
        ]  # fmt: skip

    def _keys(self) -> None:
        key, pub = self.dir / "sa.key", self.dir / "sa.pub"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True
        )
        (self.dir / "tokens.csv").write_text(f"{TOKEN},admin,admin-uid,system:masters\n")

    def _ready(self, process: Process) -> Callable[[], bool]:
        """A check that /readyz says ok; LabError at once if the apiserver exited."""

        def ready() -> bool:
            if not process.alive():
                raise LabError("kube-apiserver exited during start")
            try:
                return self._get("/readyz", timeout=2).strip() == b"ok"
            except OSError:
                return False

        return ready

    def open_watches(self, resource: str) -> float:
        """How many watches of `resource` the apiserver is serving now (apiserver_longrunning_gauge)."""
        samples = (
            s for f in text_string_to_metric_families(self._get("/metrics").decode()) for s in f.samples
        )
        return sum(
            s.value
            for s in samples
            if s.name == "apiserver_longrunning_gauge"
            and (s.labels.get("verb"), s.labels.get("resource")) == ("WATCH", resource)
        )

    def _get(self, path: str, timeout: float = 10) -> bytes:
        """GET `path` from the apiserver as the admin (its certificate is self-signed, on loopback)."""
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.api_port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            return bytes(response.read())

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for the admin token, skipping TLS verification of the self-signed cert."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "lab",
                    "cluster": {
                        "server": f"https://127.0.0.1:{self.api_port}",
                        "insecure-skip-tls-verify": True,
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": TOKEN}}],
            "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "admin"}}],
            "current-context": "lab",
        }
        path.write_text(json.dumps(doc), encoding="utf-8")
        return path

    def compact(self) -> int:
        """Compact etcd at its current revision through the JSON gateway; returns the revision."""
        revision = int(self._etcd("/v3/kv/range", {"key": "AA=="})["header"]["revision"])
        self._etcd("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def _etcd(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.etcd_port}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result
