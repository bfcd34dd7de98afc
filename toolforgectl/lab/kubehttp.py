"""The lab's Kubernetes API over HTTP: which request reaches which operation of FakeKubeApi."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from toolforgectl.lab.kubewire import TOKEN, status_body

if TYPE_CHECKING:
    from toolforgectl.lab.kubeapi import FakeKubeApi

_NAMESPACED = re.compile(r"/(?:api/v1|apis/apps/v1)/namespaces/([^/]+)/(services|deployments)(?:/([^/]+))?")
_PODS = re.compile(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+)/log)?")


def handler_for(api: FakeKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            for flag in ("watch", "allowWatchBookmarks"):  # Go's ParseBool: "true", "True", "1", ...
                if flag in query:
                    query[flag] = "true" if query[flag].lower() in ("true", "1", "t") else "false"
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._json(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
            elif pods := _PODS.fullmatch(parts.path):
                self._pods(pods.group(1), pods.group(2), query)
            elif found := _NAMESPACED.fullmatch(parts.path):
                namespace, kind, name = found.groups()
                if name:
                    self._json(*api.read(kind, namespace, name))
                elif kind == "deployments":
                    self._json(200, api.deployment_list(namespace, query))
                else:
                    self._json(405, status_body(405, "MethodNotAllowed"))
            elif parts.path != "/api/v1/services":
                self._json(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
            elif status := api.take_failure(query):
                self._json(status, {"kind": "Status", "code": status, "message": "failing as told"})
            elif query.get("watch") == "true":
                self._stream(api.watch_lines(query))
            else:
                self._json(200, api.list_body(query))

        def _pods(self, namespace: str, pod: str | None, query: dict[str, str]) -> None:
            if pod is None:
                self._json(200, api.pod_list(namespace, query))
                return
            log = api.pod_log(namespace, pod, query)
            if log is None:
                self._json(404, status_body(404, "NotFound"))
                return
            data = log.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self._change("POST")

        def do_PUT(self) -> None:
            self._change("PUT")

        def do_DELETE(self) -> None:
            self._change("DELETE")

        def _change(self, method: str) -> None:
            """Create, replace or delete one Service or Deployment. POST to a collection creates
            (409 when it exists), as the real API does; PUT (or POST) to one Service creates or
            replaces it, as the lab's kubectl."""
            found = _NAMESPACED.fullmatch(urlsplit(self.path).path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._json(401, status_body(401, "Unauthorized"))
                return
            if found is None or (method == "DELETE" and not found.group(3)):
                self._json(404, status_body(404, "NotFound"))
                return
            namespace, kind, name = found.groups()
            try:
                if method == "DELETE":
                    self._json(*api.remove(kind, namespace, name))
                elif not name:
                    self._json(*api.create(kind, namespace, json.loads(raw)))
                elif kind == "services":
                    self._json(*api.upsert_service(namespace, name, json.loads(raw)))
                else:
                    self._json(*api.replace(kind, namespace, name, json.loads(raw)))
            except (ValueError, KeyError, TypeError) as exc:
                self._json(400, {"kind": "Status", "code": 400, "message": f"no: {exc!r}"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, lines: Iterator[bytes | None]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for line in lines:
                    if line is None:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                self.close_connection = True

    return Handler
