"""The HTTP server under the lab's fake APIs (cloud, Kubernetes): a thread per connection, and quiet
when a client hangs up before its answer is written."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class LabHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a watch or a keep-alive connection must not hold the process at exit

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a test's timeout, a daemon stopped by lab down) is
        # routine for a server; socketserver would print a traceback for it into the lab's logs and
        # the test run's output. Anything else is a fault in the fake and is still printed.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
