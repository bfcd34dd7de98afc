"""DNS for a failover: the cloud adapter's Designate calls (real openstacksdk against the lab's API
over HTTP), what a real DNS server (dnsmasq, fed by that API) answers through the DNS adapter
(dnspython), and the site's DNS command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.cloudlab import SERVERS, LabCloud, running_cloud
from toolforgectl.adapters import dns
from toolforgectl.adapters.cloud import Cloud
from toolforgectl.adapters.processes import Process, free_port
from toolforgectl.core.errors import EXIT_UNAVAILABLE, CloudConflictError, CloudError, DnsError, NotFoundError
from toolforgectl.lab import dnsserver

ZONE, NAME = "lab.test.", "tools.lab.test."
PROXY_01, PROXY_02 = SERVERS["proxy-01"], SERVERS["proxy-02"]


@dataclass
class Designate:
    """The lab cloud with one record (NAME -> proxy-01), a connection, and dnsmasq answering it."""

    lab: LabCloud
    cloud: Cloud
    server: Process

    def ask(self) -> dns.Answer:
        return dns.ask(NAME, ("127.0.0.1", self.server.port))


@pytest.fixture
def designate(tmp_path: Path) -> Iterator[Designate]:
    with running_cloud(tmp_path / "cloud") as lab:
        lab.state.add_record(NAME, ZONE, "proxy-01")
        files = dnsserver.DnsFiles(tmp_path / "dns")
        server = dnsserver.start(files, ZONE, "127.0.0.1", free_port())
        lab.api.designate.dns = files
        lab.api.designate.publish()
        cloud = lab.connect()
        try:
            yield Designate(lab, cloud, server)
        finally:
            cloud.close()
            server.stop()


def test_a_record_is_read_changed_and_the_dns_server_answers_the_change(designate: Designate) -> None:
    record = designate.cloud.dns_record(ZONE, NAME)
    assert (record.zone, record.name, record.records) == (ZONE, NAME, (PROXY_01,))
    assert designate.ask().addresses == (PROXY_01,)

    changed = designate.cloud.update_dns_record(ZONE, NAME, (PROXY_02,), expect=(PROXY_01,))

    assert changed.records == (PROXY_02,)
    assert designate.cloud.dns_record(ZONE, NAME).records == (PROXY_02,)
    assert designate.ask().addresses == (PROXY_02,)


def test_a_change_over_someone_elses_is_refused_and_changes_nothing(designate: Designate) -> None:
    (record,) = designate.lab.state.recordsets.values()
    designate.lab.state.set_records(record.id, ["127.0.0.99"])  # another operator, just now

    with pytest.raises(CloudConflictError, match=r"changed since it was read: it holds 127\.0\.0\.99"):
        designate.cloud.update_dns_record(ZONE, NAME, (PROXY_02,), expect=(PROXY_01,))

    assert designate.lab.api.calls("PUT", "/recordsets/") == []
    assert designate.cloud.dns_record(ZONE, NAME).records == ("127.0.0.99",)


def test_a_designate_error_names_the_call_and_the_status(designate: Designate) -> None:
    designate.lab.api.fail_next(status=503, method="PUT", path="/recordsets/")

    with pytest.raises(CloudError) as raised:
        designate.cloud.update_dns_record(ZONE, NAME, (PROXY_02,), expect=(PROXY_01,))

    message = str(raised.value)
    assert message.startswith(f"cloud lab: updating DNS record {NAME} to {PROXY_02} (Designate PUT) failed")
    assert "HTTP 503" in message and raised.value.exit_code == EXIT_UNAVAILABLE
    assert designate.ask().addresses == (PROXY_01,), "nothing changed"


def test_a_missing_zone_or_record_is_named(designate: Designate) -> None:
    with pytest.raises(NotFoundError, match=r"no DNS zone other\.test\."):
        designate.cloud.dns_record("other.test.", "tools.other.test.")
    with pytest.raises(NotFoundError, match=r"zone lab\.test\. has no A recordsets named www\.lab\.test\."):
        designate.cloud.dns_record(ZONE, "www.lab.test.")


def test_a_resolver_without_the_name_or_without_an_answer_says_so(designate: Designate) -> None:
    unknown = dns.ask("www.lab.test.", ("127.0.0.1", designate.server.port))
    assert (unknown.addresses, unknown.problem) == ((), "NXDOMAIN")

    silent = dns.ask(NAME, ("127.0.0.1", free_port()), timeout=0.3)  # nothing listens there
    assert silent.addresses == () and silent.problem
    assert str(silent).startswith("nothing (")


def test_a_command_template_fills_each_word_without_splitting_a_value() -> None:
    argv = dns.command_line("set-record --name {name} {address}", name=NAME, address="1.2.3.4 --evil")

    assert argv == ["set-record", "--name", NAME, "1.2.3.4 --evil"]


def test_the_command_runs_and_a_failing_one_is_named_with_its_status_and_output() -> None:
    assert dns.run([sys.executable, "-c", "print('changed')"], timeout=30) == "changed"

    with pytest.raises(DnsError) as raised:
        dns.run([sys.executable, "-c", "import sys; sys.exit('zone is locked')"], timeout=30)

    assert "failed with exit status 1: zone is locked" in str(raised.value)
    assert raised.value.exit_code == EXIT_UNAVAILABLE
    with pytest.raises(DnsError, match="could not be started"):
        dns.run(["/nonexistent/set-record"], timeout=30)
