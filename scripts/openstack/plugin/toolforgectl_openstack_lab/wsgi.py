"""`lab-serve-wsgi MODULE HOST PORT`: serve an OpenStack API's WSGI `application` with threads.

The services' own servers needed eventlet, which they dropped; their WSGI modules remain. A
threaded stdlib server is plenty for a test cloud. oslo.config parses `sys.argv` when the module is
imported, so the arguments are taken off it first.
"""

from __future__ import annotations

import importlib
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung request must not keep the process from stopping


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
        """The services log their requests themselves."""


def main() -> None:
    """Import the module named first, then serve its `application` on host and port."""
    module, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.argv = sys.argv[:1]
    application = importlib.import_module(module).application
    server = make_server(host, port, application, server_class=_ThreadingServer, handler_class=_QuietHandler)
    print(f"lab-serve-wsgi: {module} on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
