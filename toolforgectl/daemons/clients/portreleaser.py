"""portreleaser: remove this tool's route from the active proxy (run from the grid job epilog).

Sends `unregister` for the route (default `.*`); the proxy removes it only while it still points
at this host, so a late epilog cannot drop a newer job's registration elsewhere.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from toolforgectl.core import logs, output, wire
from toolforgectl.core.errors import RegistrationError
from toolforgectl.daemons.clients import proxyclient

PROG = "portreleaser"
log = logging.getLogger(PROG)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry: exit 0 once the proxy said `ok`, 1 with one error line otherwise."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    proxyclient.add_arguments(parser)
    args = parser.parse_args(argv)
    logs.setup(args.log_format, args.log_level)
    try:
        where = proxyclient.target(args)
        if where is None:
            log.info(
                "%s is empty (registration is switched off); nothing to unregister", args.active_proxy_file
            )
            return
        proxyclient.call(where, lambda _own: wire.encode(wire.UNREGISTER, args.route, None, where.token))
    except RegistrationError as exc:
        output.fail(PROG, exc)
