"""A small Kubernetes API for Services, on loopback HTTP, so the real client library can be tested.

It speaks what kube2proxy uses: `GET /api/v1/services` (label selector, limit/continue) and the
same with `watch=true` (chunked JSON lines from a resourceVersion, BOOKMARKs, timeoutSeconds,
ERROR 410 for a compacted version, as kube-apiserver 1.20 sends it). Tests drive it in-process:
`put`/`delete` Services, `gap()` to change things no open watch will see, then expire open
watches with 410, and `cut_watches()` to break streams mid-chunk. Requests are logged in
`requests` so a test can see who listed and from which version a watch resumed.

For the `webservice` kubernetes backend it also keeps Deployments and namespaced Services:
create (POST, 409 when it exists), read, replace (PUT) and delete, and a namespaced Deployment
list by label, each stored as the client sent it (replicas, resources and all). A Service created
this way is a Service like any other: watches see it, so kube2proxy routes it. Deployments are
reported ready at once (there is no kubelet), with `replicas` pods carrying the template's labels
(new pods on each change of the Deployment, none after its deletion): listed by label, and each
with a log (`GET .../pods/NAME/log`, `tailLines`) that a test writes with `write_log`.

The lab runs it as a process of its own (`python -m toolforgectl.lab.kubeapi`), one API for every
proxy's kube2proxy; there, Services change over HTTP as with kubectl: `PUT
/api/v1/namespaces/NS/services/NAME` with a Service's JSON creates or replaces it (the real API
wants POST to create; the lab takes either), `DELETE` removes it.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolforgectl.lab.httpserver import LabHTTPServer
from toolforgectl.lab.kubehttp import handler_for
from toolforgectl.lab.kubewire import (
    TOKEN,
    bookmark,
    decode_continue,
    encode_continue,
    gone,
    line,
    selected,
    status_body,
)

WEBSERVICE_LABEL = "tools.wmflabs.org/webservice"


@dataclass
class _Event:
    version: int
    type: str
    obj: dict[str, Any]


@dataclass
class _State:
    """Everything behind the lock: objects, history, and what open watches must do next."""

    version: int = 100
    services: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    history: list[_Event] = field(default_factory=list)
    compacted: int = 0  # a watch from an older version gets 410
    expire_round: int = 0  # bumping it ends every open watch with ERROR 410
    cut_round: int = 0  # bumping it breaks every open watch mid-stream
    failures: int = 0  # answer this many more requests with `failure_status`
    failure_status: int = 500
    failure_watch_only: bool = False
    closing: bool = False


def service(
    namespace: str,
    name: str,
    cluster_ip: str = "127.96.0.10",
    ports: list[tuple[str, int]] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Service object as the API serves it (labelled as a webservice unless `labels` says else)."""
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "namespace": namespace,
            "name": name,
            "labels": {WEBSERVICE_LABEL: "true"} if labels is None else labels,
        },
        "spec": {
            "clusterIP": cluster_ip,
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in (ports or [("http", 8000)])],
        },
    }


class FakeKubeApi:
    """The Services part of a Kubernetes API, in a background thread on a free loopback port."""

    def __init__(self, host: str = "127.0.0.1", bookmark_interval: float = 1.0, port: int = 0) -> None:
        self.state = _State()
        self.lock = threading.Condition()
        self.bookmark_interval = bookmark_interval
        self.requests: list[dict[str, str]] = []
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, pod): the pod
        self.pod_logs: dict[tuple[str, str], str] = {}
        self._pod_owner: dict[tuple[str, str], tuple[str, str]] = {}  # pod -> its Deployment
        self._next_ip = 10
        self.server = LabHTTPServer((host, port), handler_for(self))
        self.host, self.port = host, int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where the API answers."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeKubeApi:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End every watch and stop serving."""
        with self.lock:
            self.state.closing = True
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for this API with a bearer token (which the API insists on)."""
        cluster = {"name": "lab", "cluster": {"server": self.url}}
        context = {"name": "lab", "context": {"cluster": "lab", "user": "lab"}}
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": "lab", "user": {"token": TOKEN}}],
            "contexts": [context],
            "current-context": "lab",
        }
        path.write_text(json.dumps(doc), encoding="utf-8")
        return path

    # Changes -------------------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> int:
        """Create or replace a Service; returns its new resourceVersion."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        with self.lock:
            kind = "MODIFIED" if key in self.state.services else "ADDED"
            return self._record(kind, key, obj)

    def delete(self, namespace: str, name: str) -> int:
        """Delete a Service; returns the resourceVersion of the deletion."""
        with self.lock:
            obj = self.state.services[(namespace, name)]
            return self._record("DELETED", (namespace, name), obj)

    def _record(self, kind: str, key: tuple[str, str], obj: dict[str, Any]) -> int:
        self.state.version += 1
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self.state.version)
        if kind == "DELETED":
            del self.state.services[key]
        else:
            self.state.services[key] = obj
        self.state.history.append(_Event(self.state.version, kind, obj))
        self.lock.notify_all()
        return self.state.version

    @contextmanager
    def gap(self) -> Iterator[None]:
        """Changes made inside reach no open watch: on exit history is compacted and every open
        watch ends with ERROR 410, as when etcd compacts under a slow watcher."""
        with self.lock:
            yield
            self.state.compacted = self.state.version
            self.state.history.clear()
            self.state.expire_round += 1
            self.lock.notify_all()

    def cut_watches(self) -> None:
        """Break every open watch mid-stream (no final chunk), as a dropped connection does."""
        with self.lock:
            self.state.cut_round += 1
            self.lock.notify_all()

    def fail_next(self, count: int, status: int = 500, watch_only: bool = False) -> None:
        """Answer the next `count` requests (or watch requests) with HTTP `status`."""
        with self.lock:
            self.state.failures, self.state.failure_status = count, status
            self.state.failure_watch_only = watch_only

    def take_failure(self, query: dict[str, str]) -> int | None:
        """The status this request must fail with, if it is one of those told to fail."""
        with self.lock:
            watch = query.get("watch") == "true"
            if self.state.failures <= 0 or (self.state.failure_watch_only and not watch):
                return None
            self.state.failures -= 1
            return self.state.failure_status

    def watches(self) -> list[dict[str, str]]:
        """The watch requests so far, oldest first."""
        return [r for r in list(self.requests) if r.get("watch") == "true"]

    def lists(self) -> list[dict[str, str]]:
        """The list requests so far, oldest first."""
        return [r for r in list(self.requests) if r.get("watch") != "true"]

    # Namespaced objects (the webservice backend) --------------------------------------------

    def create(self, kind: str, namespace: str, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST: a new Deployment or Service in `namespace`; 409 when one of that name exists."""
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["namespace"] = namespace
        key = (namespace, obj["metadata"]["name"])
        with self.lock:
            if key in (self.deployments if kind == "deployments" else self.state.services):
                return 409, status_body(409, "AlreadyExists")
            return 201, self._store(kind, key, obj)

    def replace(
        self, kind: str, namespace: str, name: str, obj: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """PUT: replace an existing object; 404 when there is none."""
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["namespace"] = namespace
        with self.lock:
            if (namespace, name) not in (self.deployments if kind == "deployments" else self.state.services):
                return 404, status_body(404, "NotFound")
            return 200, self._store(kind, (namespace, name), obj)

    def read(self, kind: str, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
        """GET one object."""
        with self.lock:
            found = (self.deployments if kind == "deployments" else self.state.services).get(
                (namespace, name)
            )
        return (200, found) if found is not None else (404, status_body(404, "NotFound"))

    def remove(self, kind: str, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
        """DELETE one object (a Service's deletion is a watch event)."""
        with self.lock:
            if kind == "deployments":
                found = self.deployments.pop((namespace, name), None)
                self._replace_pods((namespace, name), None)
            elif (namespace, name) in self.state.services:
                found = self.state.services[(namespace, name)]
                self.delete(namespace, name)
            else:
                found = None
        return (
            (200, status_body(200, "Success")) if found is not None else (404, status_body(404, "NotFound"))
        )

    def upsert_service(self, namespace: str, name: str, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """PUT to one Service: create or replace it (a clusterIP is kept, or one is given)."""
        obj = json.loads(json.dumps(obj))
        obj.setdefault("metadata", {}).update(namespace=namespace, name=name)
        with self.lock:
            return 200, self._store("services", (namespace, name), obj)

    def deployment_list(self, namespace: str, query: dict[str, str]) -> dict[str, Any]:
        """The Deployments of `namespace` matching labelSelector."""
        with self.lock:
            items = [
                o for (ns, _), o in sorted(self.deployments.items()) if ns == namespace and selected(o, query)
            ]
            version = str(self.state.version)
        return {
            "kind": "DeploymentList",
            "apiVersion": "apps/v1",
            "metadata": {"resourceVersion": version},
            "items": items,
        }

    def _store(self, kind: str, key: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        if kind == "deployments":
            self.state.version += 1
            obj["metadata"]["resourceVersion"] = str(self.state.version)
            replicas = (obj.get("spec") or {}).get("replicas", 1)
            obj["status"] = {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}
            self.deployments[key] = obj
            self._replace_pods(key, obj)
            return obj
        spec = obj.setdefault("spec", {})
        if not spec.get("clusterIP"):
            old = self.state.services.get(key)
            spec["clusterIP"] = (old or {}).get("spec", {}).get("clusterIP") or f"127.96.1.{self._next_ip}"
            self._next_ip += 1
        self.put(obj)
        return self.state.services[key]

    def _replace_pods(self, owner: tuple[str, str], deployment: dict[str, Any] | None) -> None:
        """Under the lock: the pods of `owner` replaced by `deployment`'s (none when it is None),
        as a rollout or a deletion leaves them."""
        for pod in [pod for pod, of in self._pod_owner.items() if of == owner]:
            del self.pods[pod], self._pod_owner[pod]
            self.pod_logs.pop(pod, None)
        if deployment is None:
            return
        spec = deployment.get("spec") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        for index in range(int(spec.get("replicas", 1))):
            name = f"{owner[1]}-{deployment['metadata']['resourceVersion']}-{index}"
            self.pods[(owner[0], name)] = {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {"namespace": owner[0], "name": name, "labels": dict(labels)},
                "status": {"phase": "Running"},
            }
            self._pod_owner[(owner[0], name)] = owner

    def pods_of(self, namespace: str, deployment: str) -> list[str]:
        """The names of the pods `deployment` runs now."""
        with self.lock:
            return sorted(pod for (ns, pod), of in self._pod_owner.items() if of == (namespace, deployment))

    def write_log(self, namespace: str, pod: str, text: str) -> None:
        """Append `text` to the log of `pod`."""
        with self.lock:
            self.pod_logs[(namespace, pod)] = self.pod_logs.get((namespace, pod), "") + text

    def pod_list(self, namespace: str, query: dict[str, str]) -> dict[str, Any]:
        """The pods of `namespace` matching labelSelector."""
        with self.lock:
            items = [o for (ns, _), o in sorted(self.pods.items()) if ns == namespace and selected(o, query)]
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}

    def pod_log(self, namespace: str, pod: str, query: dict[str, str]) -> str | None:
        """The log of `pod` (its last `tailLines` lines), or None when there is no such pod."""
        with self.lock:
            if (namespace, pod) not in self.pods:
                return None
            lines = self.pod_logs.get((namespace, pod), "").splitlines(keepends=True)
        tail = int(query.get("tailLines") or len(lines))
        return "".join(lines[len(lines) - tail :] if tail else [])

    # Serving -------------------------------------------------------------------------------

    def list_body(self, query: dict[str, str]) -> dict[str, Any]:
        """A ServiceList page for `query` (labelSelector, limit, continue)."""
        with self.lock:
            self.requests.append(query)
            version = self.state.version
            items = [o for _, o in sorted(self.state.services.items()) if selected(o, query)]
        start, version = decode_continue(query.get("continue"), version)
        limit = int(query.get("limit") or 0) or len(items) or 1
        page = items[start : start + limit]
        meta: dict[str, Any] = {"resourceVersion": str(version)}
        if start + limit < len(items):
            meta["continue"] = encode_continue(start + limit, version)
        return {"kind": "ServiceList", "apiVersion": "v1", "metadata": meta, "items": page}

    def watch_lines(self, query: dict[str, str]) -> Iterator[bytes | None]:
        """The lines of one watch; None means: break the connection now."""
        since = int(query.get("resourceVersion") or 0)
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") == "true"
        with self.lock:
            self.requests.append(query)  # logged only once cut_watches() and gap() can reach it
            if since and since < self.state.compacted:
                yield line(gone())
                return
            rounds = (self.state.expire_round, self.state.cut_round)
            pending = self._initial(since, query)
        next_bookmark = time.monotonic() + self.bookmark_interval
        while True:
            for event in pending:
                yield line({"type": event.type, "object": event.obj})
                since = event.version
            with self.lock:
                pending, verdict = self._wait(since, query, rounds, min(deadline, next_bookmark))
                version = self.state.version
            if verdict == "cut":
                yield None
                return
            if verdict == "gone":
                yield line(gone())
                return
            if verdict == "end" or time.monotonic() >= deadline:
                return
            if bookmarks and not pending and time.monotonic() >= next_bookmark:
                yield line({"type": "BOOKMARK", "object": bookmark(version)})
                next_bookmark = time.monotonic() + self.bookmark_interval

    def _initial(self, since: int, query: dict[str, str]) -> list[_Event]:
        if not since:  # resourceVersion "" or "0": the current state as ADDED events
            current = [o for o in self.state.services.values() if selected(o, query)]
            return [_Event(int(o["metadata"]["resourceVersion"]), "ADDED", o) for o in current]
        return self._after(since, query)

    def _after(self, since: int, query: dict[str, str]) -> list[_Event]:
        return [e for e in self.state.history if e.version > since and selected(e.obj, query)]

    def _wait(
        self, since: int, query: dict[str, str], rounds: tuple[int, int], until: float
    ) -> tuple[list[_Event], str]:
        """Under the lock: wait for news until `until`; what to send and what to do next."""
        while True:
            if self.state.closing:
                return [], "end"
            if self.state.cut_round != rounds[1]:
                return [], "cut"
            if self.state.expire_round != rounds[0]:
                return [], "gone"
            pending = self._after(since, query)
            left = until - time.monotonic()
            if pending or left <= 0:
                return pending, "go"
            self.lock.wait(left)


def main(argv: list[str] | None = None) -> None:
    """Serve the fake API on `--host:--port` until SIGTERM, with a kubeconfig for it at `--kubeconfig`."""
    parser = argparse.ArgumentParser(prog="kubeapi", description="The lab's fake Kubernetes API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write its kubeconfig")
    args = parser.parse_args(argv)
    api = FakeKubeApi(args.host, port=args.port)
    api.write_kubeconfig(args.kubeconfig)
    signal.signal(signal.SIGTERM, lambda *_: _stop(api))
    api.server.serve_forever()


def _stop(api: FakeKubeApi) -> None:
    # serve_forever runs in this thread, so its shutdown must come from another.
    threading.Thread(target=api.stop, daemon=True).start()


if __name__ == "__main__":
    main()
