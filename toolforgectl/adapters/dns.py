"""The DNS adapter: the only module that imports dnspython; asks resolvers, runs the site's DNS command.

After a failover the internal resolvers must lead the public name to the new active proxy. What
they answer is asked of each one directly (a query to its address and port, recursion desired,
no system resolver and no cache of ours in between), so a verification sees exactly what a host
using that resolver would get. The record itself is changed through Designate (adapters/cloud.py)
or, at a site without it, by a configured command, which this module runs.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from toolforgectl.core.errors import DnsError

QUERY_TIMEOUT = 2.0  # seconds per question; a resolver slower than that counts as not answering
COMMAND_OUTPUT = 500  # characters of a failed command's output shown in the error


@dataclass(frozen=True)
class Answer:
    """What one resolver answered for a name: its A records, or why there are none."""

    resolver: str  # host:port, as the config names it
    addresses: tuple[str, ...] = ()
    problem: str = ""  # NXDOMAIN, SERVFAIL, no answer within the timeout, ...

    def names(self, address: str) -> bool:
        """Whether the resolver answers exactly `address` (one record, the new proxy's)."""
        return self.addresses == (address,)

    def __str__(self) -> str:
        return ", ".join(self.addresses) if self.addresses else f"nothing ({self.problem or 'no A record'})"


def ask(name: str, resolver: tuple[str, int], timeout: float = QUERY_TIMEOUT) -> Answer:
    """The A records resolver `resolver` (address, port) answers for `name` now. A resolver that
    does not answer, or answers an error, is an Answer with a `problem`, not an exception: the
    caller waits for it like for any other wrong answer."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    host, port = resolver
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    query = dns.message.make_query(name, dns.rdatatype.A)
    try:
        reply, _ = dns.query.udp_with_fallback(query, host, timeout=timeout, port=port)
    except dns.exception.Timeout:
        return Answer(shown, problem=f"no answer within {timeout:g}s")
    except (OSError, dns.exception.DNSException) as exc:
        return Answer(shown, problem=str(exc) or type(exc).__name__)
    if reply.rcode() != dns.rcode.NOERROR:
        return Answer(shown, problem=dns.rcode.to_text(reply.rcode()))
    found = sorted(
        record.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for record in rrset
    )
    return Answer(shown, tuple(found))


def command_line(template: str, **values: str) -> list[str]:
    """The words of `template` (split as a shell would) with `{name}` etc. filled into each word: a
    value never splits into two arguments nor reaches a shell."""
    try:
        return [word.format(**values) for word in shlex.split(template)]
    except (ValueError, KeyError, IndexError) as exc:
        raise DnsError(f"dns.command {template!r} cannot be filled in: {exc}") from None


def run(argv: list[str], timeout: float) -> str:
    """Run the site's DNS command `argv`; its output, or DnsError with its exit status and output."""
    shown = shlex.join(argv)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DnsError(f"the DNS command `{shown}` did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise DnsError(f"the DNS command `{shown}` could not be started: {exc.strerror or exc}") from None
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        tail = output[-COMMAND_OUTPUT:] or "no output"
        raise DnsError(f"the DNS command `{shown}` failed with exit status {done.returncode}: {tail}")
    return output
