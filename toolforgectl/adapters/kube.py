"""The Kubernetes adapter: the only module that imports the `kubernetes` client; Services as plain data.

The client library is imported lazily, inside the functions that need it, so commands that never
talk to Kubernetes (`toolforgectl --help`) do not pay for importing it. Lists and watch events are
parsed from the raw JSON rather than into the client's models: kube2proxy needs five fields, so
building a full model object for each of 10,000 Services is work it can skip.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from toolforgectl.core.errors import GoneError, KubeError, NotFoundError, StreamBrokenError

CONNECT_TIMEOUT = 5.0
LIST_TIMEOUT = 60.0
WATCH_READ_SLACK = 30.0  # a watch may be silent for timeoutSeconds; only then is the socket dead
PAGE_SIZE = 500
BATCH_MAX = 1000
_TIMEOUTS = (CONNECT_TIMEOUT, LIST_TIMEOUT)


@dataclass(frozen=True)
class ServicePort:
    """One entry of a Service's `spec.ports`."""

    name: str
    port: int


@dataclass(frozen=True)
class Service:
    """The parts of a Kubernetes Service that decide its route."""

    namespace: str
    name: str
    cluster_ip: str
    ports: tuple[ServicePort, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name): what identifies the Service across events."""
        return (self.namespace, self.name)


@dataclass(frozen=True)
class WatchEvent:
    """ADDED, MODIFIED or DELETED with its Service, or a BOOKMARK (service None)."""

    type: str
    resource_version: str
    service: Service | None


Batch = list[WatchEvent]  # events that arrived together


def service_from(obj: Mapping[str, Any]) -> Service:
    """A Service from its JSON form; missing or odd fields become empty values, never errors."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ports = tuple(
        ServicePort(str(p.get("name") or ""), p["port"])
        for p in spec.get("ports") or []
        if isinstance(p, Mapping) and isinstance(p.get("port"), int)
    )
    labels = meta.get("labels") or {}
    return Service(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        cluster_ip=str(spec.get("clusterIP") or ""),
        ports=ports,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
    )


class ServiceApi:
    """Lists and watches Services cluster-wide through the official client."""

    def __init__(self, core_v1: Any) -> None:
        self._core = core_v1

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None = None) -> ServiceApi:
        """Credentials from `kubeconfig`, or the in-cluster service account when it is None."""
        from kubernetes import client

        return cls(client.CoreV1Api(_api_client(kubeconfig, context)))

    def list(self, selector: str) -> tuple[list[Service], str]:
        """Every Service matching `selector` (paged), and the resourceVersion to watch from."""
        services: list[Service] = []
        token: str | None = None
        while True:
            body = self._json(
                self._core.list_service_for_all_namespaces,
                label_selector=selector,
                limit=PAGE_SIZE,
                _continue=token,
                _request_timeout=(CONNECT_TIMEOUT, LIST_TIMEOUT),
            )
            services += [service_from(item) for item in body.get("items") or []]
            meta = body.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return services, str(meta.get("resourceVersion", ""))

    def watch(
        self, selector: str, resource_version: str, timeout_seconds: int
    ) -> Generator[Batch, None, None]:
        """Events after `resource_version`, in batches, until the server ends the stream after
        `timeout_seconds`.

        A thread reads the stream; each batch is every event that arrived while the caller was
        busy with the previous one, so a burst of changes costs one Redis transaction per batch
        instead of one per event. Raises GoneError on 410 (an HTTP status or an ERROR event) and
        StreamBrokenError when the stream breaks off, after yielding what came before.
        """
        response = self._call(
            self._core.list_service_for_all_namespaces,
            label_selector=selector,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT, timeout_seconds + WATCH_READ_SLACK),
        )
        lines: queue.SimpleQueue[str | BaseException | None] = queue.SimpleQueue()
        reader = threading.Thread(target=_read_lines, args=(response, lines), name="watch", daemon=True)
        reader.start()
        try:
            yield from _batches(lines)
        finally:
            with suppress(ValueError, RuntimeError, OSError):
                response.shutdown()  # unblocks the reader if we stop early (SIGTERM, standby)
            response.close()
            reader.join(timeout=5)
            response.release_conn()

    def _json(self, method: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        response = self._call(method, _preload_content=False, **kwargs)
        try:
            with _translated(KubeError, "the Kubernetes API's answer broke off"):
                body = json.loads(response.data)
        except ValueError:
            raise KubeError("the Kubernetes API answered something that is not JSON") from None
        finally:
            response.release_conn()  # back to the pool: raw responses are not released by the client
        if not isinstance(body, dict):
            raise KubeError("the Kubernetes API answered JSON that is not an object")
        return body

    @staticmethod
    def _call(method: Callable[..., Any], **kwargs: Any) -> Any:
        with _translated(KubeError, "cannot reach the Kubernetes API"):
            return method(**kwargs)


def _api_client(kubeconfig: str | None, context: str | None) -> Any:
    """An ApiClient with credentials from `kubeconfig`, or the in-cluster service account."""
    from kubernetes import client, config

    try:
        if kubeconfig:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        else:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api_client = client.ApiClient(configuration)
    except (config.ConfigException, OSError, ValueError, TypeError) as exc:
        where = kubeconfig or "the in-cluster service account"
        raise KubeError(f"cannot load Kubernetes credentials from {where}: {exc}") from None
    if not api_client.configuration.verify_ssl:
        import urllib3

        # The operator chose insecure-skip-tls-verify; one warning per request is only noise.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return api_client


class WebserviceApi:
    """A tool's webservice as a Deployment and a Service in its namespace (the kubernetes backend).

    Objects go in and come out as plain JSON data; the client's models are never built, so an
    apiserver's answer is never rejected for a field the pinned client does not know.
    """

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None = None) -> WebserviceApi:
        """Credentials from `kubeconfig`, or the in-cluster service account when it is None."""
        return cls(_api_client(kubeconfig, context))

    def apply(self, namespace: str, deployment: dict[str, Any], service: dict[str, Any]) -> None:
        """Create the Deployment and the Service, or replace them where they exist."""
        apps, core = self._apps, self._core
        kinds = (
            (
                apps.create_namespaced_deployment,
                apps.read_namespaced_deployment,
                apps.replace_namespaced_deployment,
            ),
            (core.create_namespaced_service, core.read_namespaced_service, core.replace_namespaced_service),
        )
        for (create, read, replace), wanted in zip(kinds, (deployment, service), strict=True):
            created = _status(create, namespace=namespace, body=wanted)
            if created == 404:  # the API's answer when the namespace is missing
                raise NotFoundError(
                    f"namespace {namespace} does not exist: the tool has no Kubernetes account"
                )
            if created == 409:
                _status(
                    replace,
                    name=wanted["metadata"]["name"],
                    namespace=namespace,
                    body=_replacing(
                        wanted, _status_json(read, name=wanted["metadata"]["name"], namespace=namespace)
                    ),
                )

    def delete(self, namespace: str, name: str) -> bool:
        """Delete the Deployment and the Service called `name`; whether either existed."""
        found = False
        for method in (self._apps.delete_namespaced_deployment, self._core.delete_namespaced_service):
            found |= _status(method, name=name, namespace=namespace) != 404
        return found

    def deployments(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The Deployments in `namespace` matching `selector`, as JSON data."""
        body = _status_json(
            self._apps.list_namespaced_deployment, namespace=namespace, label_selector=selector
        )
        return [item for item in body.get("items") or [] if isinstance(item, dict)]

    def pods(self, namespace: str, selector: str) -> list[str]:
        """The names of the pods in `namespace` matching `selector`."""
        body = _status_json(self._core.list_namespaced_pod, namespace=namespace, label_selector=selector)
        items = [item for item in body.get("items") or [] if isinstance(item, dict)]
        return [str((item.get("metadata") or {}).get("name", "")) for item in items]

    def pod_log(self, namespace: str, pod: str, container: str, lines: int) -> str | None:
        """The last `lines` lines of `container`'s log in `pod`, or None while the container has
        not started (the API's 400) or the pod has gone (404)."""
        from kubernetes.client.exceptions import ApiException

        with _translated(KubeError, "cannot reach the Kubernetes API"):
            try:
                response = self._core.read_namespaced_pod_log(
                    pod,
                    namespace,
                    container=container,
                    tail_lines=lines,
                    _preload_content=False,
                    _request_timeout=_TIMEOUTS,
                )
            except ApiException as exc:
                if exc.status in (400, 404):
                    return None
                raise
            try:
                return bytes(response.data).decode("utf-8", errors="replace")
            finally:
                response.release_conn()


def _replacing(wanted: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """`wanted` as a replacement of `current`: its resourceVersion, and a Service's clusterIP."""
    version = (current.get("metadata") or {}).get("resourceVersion")
    body = {**wanted, "metadata": {**wanted["metadata"], "resourceVersion": version}}
    if wanted["kind"] == "Service":  # a Service keeps the clusterIP it was given
        body["spec"] = {**wanted["spec"], "clusterIP": (current.get("spec") or {}).get("clusterIP")}
    return body


def _status(method: Callable[..., Any], **kwargs: Any) -> int:
    """Call `method`; its HTTP status when that is 404 or 409 (for the caller to decide), else 200.
    Any other failure is a KubeError."""
    from kubernetes.client.exceptions import ApiException

    with _translated(KubeError, "cannot reach the Kubernetes API"):
        try:
            response = method(_preload_content=False, _request_timeout=_TIMEOUTS, **kwargs)
        except ApiException as exc:
            if exc.status in (404, 409):
                return int(exc.status)
            raise
        _ = response.data  # read to the end: an unread answer cannot go back to the pool
    response.release_conn()
    return 200


def _status_json(method: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """Call `method` and parse its answer as a JSON object; any failure is a KubeError."""
    with _translated(KubeError, "cannot reach the Kubernetes API"):
        response = method(_preload_content=False, _request_timeout=_TIMEOUTS, **kwargs)
        try:
            body = json.loads(response.data)
        except ValueError:
            raise KubeError("the Kubernetes API answered something that is not JSON") from None
        finally:
            response.release_conn()
    if not isinstance(body, dict):
        raise KubeError("the Kubernetes API answered JSON that is not an object")
    return body


@contextmanager
def _translated(kind: type[KubeError], what: str) -> Iterator[None]:
    """Turn client and transport errors into our KubeError tree (410 always becomes GoneError)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        if exc.status == 410:
            raise GoneError(f"410 Gone: {exc.reason}") from None
        # Only status and reason: the body and headers may echo credentials.
        raise KubeError(f"the Kubernetes API answered {exc.status} {exc.reason}") from None
    except (HTTPError, OSError) as exc:
        raise kind(f"{what}: {type(exc).__name__}: {exc}") from None


def _read_lines(response: Any, out: queue.SimpleQueue[str | BaseException | None]) -> None:
    """The reader thread: every non-empty line, then None at a clean end or the exception."""
    from kubernetes.watch.watch import iter_resp_lines

    try:
        for line in iter_resp_lines(response):
            if line.strip():
                out.put(line)
        out.put(None)
    except BaseException as exc:  # handed to the consumer, which decides what it means
        out.put(exc)


def _batches(lines: queue.SimpleQueue[str | BaseException | None]) -> Iterator[Batch]:
    """Parse what the reader queued: wait for one line, then take all that is there already."""
    while True:
        items = [lines.get()]
        while len(items) < BATCH_MAX and not lines.empty():
            items.append(lines.get())
        events: list[WatchEvent] = []
        for item in items:
            if not isinstance(item, str):
                if events:
                    yield events
                if item is None:
                    return
                with _translated(StreamBrokenError, "the watch stream broke off"):
                    raise item
            try:
                events.append(_event(item))
            except KubeError:
                if events:
                    yield events  # what came before the error still counts
                raise
        yield events


def _event(line: str) -> WatchEvent:
    """One watch line as an event; an ERROR event becomes GoneError or KubeError."""
    try:
        data = json.loads(line)
        kind, obj = data["type"], data["object"]
    except (ValueError, KeyError, TypeError):
        obj = None
    if not isinstance(obj, dict):
        raise StreamBrokenError("the watch stream sent a line that is not a watch event")
    if kind == "ERROR":
        code, message = obj.get("code"), obj.get("message", "")
        if code == 410:
            raise GoneError(f"410 Gone: {message}")
        raise KubeError(f"the watch ended with an error: {code} {obj.get('reason', '')}: {message}")
    version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
    return WatchEvent(kind, version, None if kind == "BOOKMARK" else service_from(obj))
