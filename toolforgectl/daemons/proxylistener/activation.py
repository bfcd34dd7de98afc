"""The listening socket systemd hands over (socket activation), so that a restart refuses nobody.

With `proxylistener.socket` (templates/systemd/, `toolforgectl render units`), systemd owns TCP
8282 and passes it to each proxylistener it starts. While a restart runs (the old process finishes
its requests in flight, which can take its read deadline and more, then the new one starts), the
socket stays open: new connections wait in its backlog and the new process answers them, where
without it they would be refused. The hand-over is sd_listen_fds(3): LISTEN_PID names this process
and LISTEN_FDS counts the sockets from fd 3 on. Without them (a plain start, the lab, the tests),
the listener binds its own socket.
"""

from __future__ import annotations

import os
import socket

from toolforgectl.core.errors import ConfigError

FIRST_FD = 3  # SD_LISTEN_FDS_START
VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def inherited() -> socket.socket | None:
    """The listening socket systemd passed to this process, or None when it passed none."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None  # not for us: set for a parent, or never set
    count = os.environ.get("LISTEN_FDS", "")
    for name in VARIABLES:
        os.environ.pop(name, None)  # for this process only, as sd_listen_fds(1) does
    if count != "1":
        raise ConfigError(
            f"systemd passed {count or 'no'} sockets (LISTEN_FDS); proxylistener takes exactly one "
            "(one ListenStream= in proxylistener.socket)"
        )
    sock = socket.socket(fileno=FIRST_FD)
    tcp = sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
    if not tcp or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()  # not ours to close: report it and leave it as it was
        raise ConfigError(f"the socket systemd passed (fd {FIRST_FD}) is not a listening TCP socket")
    sock.set_inheritable(False)
    return sock
