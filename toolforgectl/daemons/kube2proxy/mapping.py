"""From a Kubernetes Service to the one route it asks for, or the reason it gets none.

A tool is a namespace (`tool_namespace`, e.g. `tool-{tool}`), and only the Service named after
the tool may route the tool's prefix: the original keyed routes by Service *name*, so any tool
could claim another's prefix by naming a Service after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from toolforgectl.adapters.kube import Service, ServicePort
from toolforgectl.core import validate
from toolforgectl.core.config import Kube2proxy
from toolforgectl.core.destinations import Destinations
from toolforgectl.core.errors import ValidationError
from toolforgectl.core.models import Backend

ROOT_ROUTE = ".*"


@dataclass(frozen=True)
class Route:
    """What one Service asks for: `tool`'s `route` to `backend`, owned as registry `member`."""

    member: str
    tool: str
    route: str
    backend: Backend


@dataclass(frozen=True)
class Skip:
    """Why a Service gets no route; `kind` is a short label for metrics."""

    kind: str
    reason: str


@dataclass(frozen=True)
class Owned:
    """A `k8s_services` registry member taken apart: the tool and route it stands for."""

    tool: str
    route: str


def member(namespace: str, service: str, route: str) -> str:
    """The registry member `<namespace>/<service>/<route>`, with the route's leading `/` dropped
    as the original wrote it, so registries it left behind are still understood."""
    return f"{namespace}/{service}/{route.removeprefix('/')}"


class ServiceMapper:
    """Applies the kube2proxy settings to Services and to registry members."""

    def __init__(self, settings: Kube2proxy, destinations: Destinations | None = None) -> None:
        self.settings = settings
        self.destinations = destinations or Destinations()
        before, _, after = settings.tool_namespace.partition("{tool}")
        self._namespace = re.compile(re.escape(before) + "(.+)" + re.escape(after))

    def tool_of(self, namespace: str) -> str | None:
        """The tool whose namespace this is, or None when it is no tool's namespace."""
        found = self._namespace.fullmatch(namespace)
        if found is None:
            return None
        try:
            return validate.tool_name(found.group(1))
        except ValidationError:
            return None

    def route_for(self, service: Service) -> Route | Skip:
        """The route `service` asks for, or why it gets none."""
        tool = self.tool_of(service.namespace)
        if tool is None:
            return Skip("namespace", f"namespace does not match {self.settings.tool_namespace!r}")
        if service.name != tool:
            return Skip("name", f"its name is not its tool's ({tool!r}); a tool routes only its own prefix")
        if service.cluster_ip in ("", "None"):
            return Skip("headless", "it has no clusterIP (headless)")
        port = self._port(service)
        if isinstance(port, Skip):
            return port
        path = service.labels.get(self.settings.path_label)
        route = f"/{path}{ROOT_ROUTE}" if path else ROOT_ROUTE
        host = f"[{service.cluster_ip}]" if ":" in service.cluster_ip else service.cluster_ip
        try:
            backend = self.destinations.check(validate.backend(f"http://{host}:{port.port}"))
            route = validate.route(route)
        except ValidationError as exc:
            return Skip("invalid", str(exc))
        return Route(member(service.namespace, service.name, route), tool, route, backend)

    def _port(self, service: Service) -> ServicePort | Skip:
        """The port named `port_name`, else the only port."""
        for port in service.ports:
            if port.name == self.settings.port_name:
                return port
        if len(service.ports) == 1:
            return service.ports[0]
        return Skip("port", f"no port named {self.settings.port_name!r} among {len(service.ports)} ports")

    def parse_member(self, text: str) -> Owned | None:
        """A registry member taken apart, or None if it names no tool we could route."""
        namespace, _, rest = text.partition("/")
        name, _, route = rest.partition("/")
        tool = self.tool_of(namespace)
        # A member whose Service is not named after its tool was never ours to write (the
        # original keyed by Service name): forget it rather than delete some tool's route.
        if tool is None or name != tool or not route:
            return None
        route = route if route.startswith(ROOT_ROUTE) else "/" + route
        try:
            return Owned(tool, validate.route(route))
        except ValidationError:
            return None
